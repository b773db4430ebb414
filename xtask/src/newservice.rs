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
         Then: cargo xtask run --system {system} --cmdline run="
    );
    Ok(())
}

/// The end-to-end check of the whole "write a service" path, in a
/// temporary copy of the tree (the real one is never touched): `cargo
/// xtask new-service hello`, the printed lines saved as
/// `systems/hello.toml`, then `cargo xtask run` of that system, which must
/// show the service ready, the client's 5,100 pings answered and a clean
/// shutdown. The copy has its own target directory, so this builds
/// everything once more (a few minutes). Returns the failure, if any; the
/// copy is kept then.
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
    fs::write(copy.join("systems/hello.toml"), lines).map_err(|e| keep(e.to_string()))?;
    let out = xtask(&[
        "run",
        "--system",
        "systems/hello.toml",
        "--cmdline",
        "run=",
        "--timeout",
        "300",
    ])
    .map_err(|e| keep(e.to_string()))?;
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "[hello] hello ready: answering on channel ring",
        "[hello-client] bench: ring message round trip: ",
        "bulkhead: domain hello-client: stopped: exited with code 0",
        "bulkhead: shutdown status=0",
    ] {
        if !console.contains(want) {
            let tail: Vec<&str> = console.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(keep(format!(
                "the new service's system did not show {want:?}; last lines:\n{}",
                tail.join("\n")
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
