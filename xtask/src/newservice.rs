//! `cargo xtask new-service NAME`: a new service crate from the template.

use std::fs;

use crate::{step, workspace_root, Result};

const MAIN: &str = include_str!("../templates/service_main.rs");

/// Whether `name` can name a service (and its domain and image).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 16
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Creates `services/NAME`, adds it to the workspace, and prints the
/// manifest lines that boot it next to a client.
pub fn run(name: &str) -> Result<()> {
    if !valid_name(name) {
        return Err(format!(
            "{name:?} is not a service name: 1-16 characters, a-z first, then a-z, 0-9 or '-'"
        )
        .into());
    }
    let root = workspace_root();
    let dir = root.join("services").join(name);
    if dir.exists() {
        return Err(format!("services/{name} exists already").into());
    }
    fs::create_dir_all(dir.join("src"))?;
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}-service\"\nversion.workspace = true\nedition.workspace = true\n\
             license.workspace = true\nrust-version.workspace = true\npublish = false\n\
             description = \"The {name} service\"\n\n[[bin]]\nname = \"{name}\"\npath = \"src/main.rs\"\n\
             test = false\n\n[dependencies]\nrt = {{ path = \"../../crates/rt\" }}\n\
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
        "Add to a system manifest (e.g. a copy of systems/default.toml) to boot it with a client\n\
         that pings it 5,100 times over the channel `ring`:\n\n\
         [[domain]]\nname = \"{name}\"\nimage = \"{name}\"\nmemory_kib = 2048\npriority = 4\n\n\
         [[domain]]\nname = \"{name}-client\"\nimage = \"rping\"\nmemory_kib = 2048\npriority = 4\n\n\
         [[channel]]\nname = \"ring\"\na = \"{name}-client\"\nb = \"{name}\"\npages = 2\n\
         a_gpa = 0x10000000\nb_gpa = 0x10000000\n\n\
         Then: cargo xtask run --system YOUR.toml --cmdline run="
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_checked() {
        assert!(valid_name("hello"));
        assert!(valid_name("a-1"));
        for bad in ["", "1a", "Hello", "a_b", "abcdefghijklmnopq", "a b", "-a"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_template_names_the_service() {
        let main = MAIN.replace("@NAME@", "hello");
        assert!(main.contains("The `hello` service"));
        assert!(!main.contains("@NAME@"));
    }
}
