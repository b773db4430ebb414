//! `cargo xtask new-service NAME`: a new service crate from the template.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{step, workspace_root, Result};

const MAIN: &str = include_str!("../templates/service_main.rs");

/// Whether `name` can name a service (and its domain and image).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= manifest::NAME_CAPACITY
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why `name` cannot be a new service although it is well formed: its
/// binary would be one the workspace builds already (cargo writes every
/// bare-metal binary into one directory, and images are found by binary
/// name), or its package name is taken.
fn taken(name: &str, bins: &[crate::bins::Bin]) -> Option<String> {
    if let Some(b) = bins.iter().find(|b| b.name == name) {
        return Some(format!(
            "{name:?} is already the name of a binary of package {} (images are found by \
             binary name, so a service needs a name no other binary has)",
            b.package
        ));
    }
    let package = format!("{name}-service");
    bins.iter()
        .any(|b| b.package == package)
        .then(|| format!("package {package} exists already"))
}

/// The name of the client domain in the printed manifest lines: the
/// service's name and `-client` when that fits a manifest name.
fn client_name(name: &str) -> String {
    let long = format!("{name}-client");
    if long.len() <= manifest::NAME_CAPACITY {
        long
    } else {
        "client".to_string()
    }
}

/// Creates `services/NAME`, adds it to the workspace, and prints the
/// manifest lines that boot it next to a client.
pub fn run(name: &str) -> Result<()> {
    if !valid_name(name) {
        return Err(format!(
            "{name:?} is not a service name: 1-16 characters, a-z first, then a-z, 0-9 or '-', \
             not ending in '-'"
        )
        .into());
    }
    let root = workspace_root();
    let dir = root.join("services").join(name);
    if dir.exists() {
        return Err(format!("services/{name} exists already").into());
    }
    if let Some(why) = taken(name, &crate::bins::list()?) {
        return Err(why.into());
    }
    let client = client_name(name);
    let system = if root.join(format!("systems/{name}.toml")).exists() {
        format!("systems/{name}-service.toml")
    } else {
        format!("systems/{name}.toml")
    };
    fs::create_dir_all(dir.join("src"))?;
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}-service\"\nversion.workspace = true\nedition.workspace = true\n\
             license.workspace = true\nrust-version.workspace = true\npublish = false\n\
             description = \"The {name} service\"\n\n[[bin]]\nname = \"{name}\"\npath = \"src/main.rs\"\n\
             test = false\n\n[dependencies]\nrt = {{ path = \"../../crates/rt\", features = [\"defmt\"] }}\n\
             defmt = \"1\"\n\
             shm-ring = {{ path = \"../../crates/ring\" }}\n\n[lints]\nworkspace = true\n"
        ),
    )?;
    fs::copy(root.join("services/uart/build.rs"), dir.join("build.rs"))?;
    fs::write(dir.join("src/main.rs"), MAIN.replace("@NAME@", name))?;
    let manifest = root.join("Cargo.toml");
    let text = fs::read_to_string(&manifest)?;
    let anchor = "    \"xtask\",\n]";
    let Some(at) = text.find(anchor) else {
        return Err("the root Cargo.toml has no `\"xtask\",` at the end of its members".into());
    };
    let mut updated = text.clone();
    updated.insert_str(at, &format!("    \"services/{name}\",\n"));
    fs::write(&manifest, updated)?;
    step(&format!(
        "created services/{name} and added it to the workspace"
    ));
    println!(
        "Save these lines as {system} (a system of their own), or add them to a copy of\n\
         systems/default.toml, to boot the service with a client that pings it 5,100 times over\n\
         the channel `ring`:\n\n\
         [[domain]]\nname = \"{name}\"\nimage = \"{name}\"\nmemory_kib = 2048\npriority = 4\n\n\
         [[domain]]\nname = \"{client}\"\nimage = \"rping\"\nmemory_kib = 2048\npriority = 4\n\n\
         [[channel]]\nname = \"ring\"\na = \"{client}\"\nb = \"{name}\"\npages = 2\n\
         a_gpa = 0x10000000\nb_gpa = 0x10000000\n\n\
         Then: cargo xtask run --system {system} --cmdline run=\n\n\
         With image = \"scribbler\" instead of \"rping\", the client scribbles over the rings\n\
         a hundred times before it asks; the service survives it and answers."
    );
    Ok(())
}

/// The end-to-end check of the whole "write a service" path, in a
/// temporary copy of the tree (the real one is never touched): `cargo
/// xtask new-service hello`, the printed lines saved as
/// `systems/hello.toml`, then `cargo xtask run` of that system, which must
/// show the service ready, the client's 5,100 pings answered and a clean
/// shutdown; then the same with the hostile `scribbler` as the client,
/// which the service must survive and answer afterwards. The copy has its
/// own target directory, so this builds everything once more (a few
/// minutes). Returns the failure, if any; the copy is kept then.
pub fn check_in_copy() -> std::result::Result<(), String> {
    let root = workspace_root();
    let copy = std::env::temp_dir().join(format!("bulkhead-new-service-{}", std::process::id()));
    let _ = fs::remove_dir_all(&copy);
    copy_tree(&root, &copy).map_err(|e| format!("copying the tree: {e}"))?;
    let keep = |why: String| format!("{why}\n(the copy is in {})", copy.display());
    let xtask = |args: &[&str]| {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .arg("xtask")
            .args(args)
            .current_dir(&copy)
            .env("CARGO_TARGET_DIR", copy.join("target"))
            .env_remove("CARGO_MANIFEST_DIR")
            .stdin(Stdio::null())
            .output()
    };
    let out = xtask(&["new-service", "hello"]).map_err(|e| keep(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(keep(format!(
            "`cargo xtask new-service hello` failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let lines = manifest_lines(&text).ok_or_else(|| {
        keep(format!(
            "no manifest lines in the output of new-service:\n{text}"
        ))
    })?;
    fs::write(copy.join("systems/hello.toml"), &lines).map_err(|e| keep(e.to_string()))?;
    // The same lines with a hostile client: `scribbler` lays the rings
    // out, scribbles over them a hundred times, lays them out again and
    // asks once more; the new service must still be running to answer.
    let hostile = lines.replace("image = \"rping\"", "image = \"scribbler\"");
    if hostile == lines {
        return Err(keep(format!(
            "the manifest lines of new-service name no rping client:\n{lines}"
        )));
    }
    fs::write(copy.join("systems/hello-hostile.toml"), hostile).map_err(|e| keep(e.to_string()))?;
    let boots: [(&str, &[&str]); 2] = [
        (
            "systems/hello.toml",
            &[
                "[hello] hello ready: answering on channel ring",
                "[hello-client] bench: ring message round trip: ",
                "bulkhead: domain hello-client: stopped: exited with code 0",
                "bulkhead: shutdown status=0",
            ],
        ),
        (
            "systems/hello-hostile.toml",
            &[
                "[hello] hello ready: answering on channel ring",
                "[hello-client] peer survived: answered 42 after 100 rounds of garbage",
                "bulkhead: domain hello-client: stopped: exited with code 0",
                "bulkhead: shutdown status=0",
            ],
        ),
    ];
    for (system, wants) in boots {
        let out = xtask(&[
            "run",
            "--system",
            system,
            "--cmdline",
            "run=",
            "--timeout",
            "300",
        ])
        .map_err(|e| keep(e.to_string()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let console = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        // The console's end (stdout: stderr holds cargo's build lines).
        let tail = || {
            let tail: Vec<&str> = stdout.lines().rev().take(30).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        for want in wants {
            if !console.contains(want) {
                return Err(keep(format!(
                    "{system} did not show {want:?}; last lines:\n{}",
                    tail()
                )));
            }
        }
        // The service never stops while its client runs, whatever the
        // client does; it ends cleanly once the client has gone.
        let client_gone = console
            .find("bulkhead: domain hello-client: stopped")
            .unwrap_or(0);
        let early = console
            .match_indices("bulkhead: domain hello: stopped")
            .any(|(at, _)| at < client_gone);
        let badly = console.lines().any(|l| {
            l.starts_with("bulkhead: domain hello: stopped") && !l.ends_with("exited with code 0")
        });
        if early || badly {
            return Err(keep(format!(
                "the new service stopped before its client, or not cleanly, in {system}; \
                 last lines:\n{}",
                tail()
            )));
        }
    }
    let _ = fs::remove_dir_all(&copy);
    Ok(())
}

/// The manifest part of new-service's output: from the first `[[domain]]`
/// up to the `Then:` line.
fn manifest_lines(output: &str) -> Option<String> {
    let start = output.find("[[domain]]")?;
    let rest = &output[start..];
    let end = rest.find("\nThen:").unwrap_or(rest.len());
    Some(format!("{}\n", rest[..end].trim_end()))
}

/// Copies a source tree, leaving out build output and version control.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_checked() {
        assert!(valid_name("hello"));
        assert!(valid_name("a-1"));
        assert!(valid_name("abcdefghijklmnop"));
        for bad in [
            "",
            "1a",
            "Hello",
            "a_b",
            "abcdefghijklmnopq",
            "a b",
            "-a",
            "a-",
            "../a",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_name_another_binary_or_package_has_is_refused() {
        let bins = crate::bins::list().unwrap();
        for name in [
            "kernel", "first", "echo", "rping", "manager", "uart", "xtask",
        ] {
            let why = taken(name, &bins).unwrap_or_else(|| panic!("{name} was accepted"));
            assert!(why.contains("already the name of a binary"), "{why}");
        }
        // The domain manager's package is `domain-manager`; a service
        // `domain` would be package `domain-service`, which is free.
        assert_eq!(taken("hello", &bins), None);
        assert_eq!(taken("domain", &bins), None);
        let fake = [crate::bins::Bin {
            name: "other".into(),
            package: "net-service".into(),
            domain: true,
        }];
        assert_eq!(
            taken("net", &fake).as_deref(),
            Some("package net-service exists already")
        );
    }

    #[test]
    fn the_client_name_always_fits_a_manifest() {
        assert_eq!(client_name("hello"), "hello-client");
        assert_eq!(client_name("abcdefghi"), "abcdefghi-client");
        assert_eq!(client_name("abcdefghij"), "client");
        for n in 1..=manifest::NAME_CAPACITY {
            let name = "a".repeat(n);
            let text = format!(
                "[[domain]]\nname = \"{name}\"\nimage = \"{name}\"\nmemory_kib = 2048\npriority = 4\n\n\
                 [[domain]]\nname = \"{}\"\nimage = \"rping\"\nmemory_kib = 2048\npriority = 4\n",
                client_name(&name)
            );
            manifest::from_toml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn the_printed_lines_are_cut_out_of_the_output() {
        let out = "Save these lines:\n\n[[domain]]\nname = \"x\"\n\n[[channel]]\nname = \"ring\"\n\nThen: cargo\n";
        assert_eq!(
            manifest_lines(out).unwrap(),
            "[[domain]]\nname = \"x\"\n\n[[channel]]\nname = \"ring\"\n"
        );
        assert_eq!(manifest_lines("nothing"), None);
    }

    #[test]
    fn the_template_names_the_service() {
        let main = MAIN.replace("@NAME@", "hello");
        assert!(main.contains("The `hello` service"));
        assert!(!main.contains("@NAME@"));
    }
}
