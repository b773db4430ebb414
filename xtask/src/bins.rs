//! Which package builds which binary: the domain images a system may name
//! (the binaries of the packages under `guests/` and `services/`), found
//! with `cargo metadata`, so that a system is checked against them before
//! anything is compiled and only the packages it uses are built.

use std::path::Path;
use std::process::Command;

use crate::{workspace_root, Result};

/// A binary target of a workspace package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bin {
    /// The binary's name: the file cargo writes, and the image name a
    /// manifest uses.
    pub name: String,
    /// The package that builds it.
    pub package: String,
    /// A domain image: its package lives under `guests/` or `services/`.
    pub domain: bool,
}

/// The packages every boot image needs: the core and the first guest.
const ALWAYS: [&str; 2] = ["kernel", "first-guest"];

/// Every binary target of the workspace's packages.
pub fn list() -> Result<Vec<Bin>> {
    let root = workspace_root();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    parse(&out.stdout, &root)
}

/// The binaries in `cargo metadata`'s JSON output (`root`: the workspace
/// root, to tell where a package lives).
fn parse(json: &[u8], root: &Path) -> Result<Vec<Bin>> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("`cargo metadata` output: {e}"))?;
    let packages = v["packages"]
        .as_array()
        .ok_or("`cargo metadata` output has no package list")?;
    let domain_dirs = [root.join("guests"), root.join("services")];
    let mut bins = Vec::new();
    for p in packages {
        let (Some(package), Some(manifest)) = (p["name"].as_str(), p["manifest_path"].as_str())
        else {
            return Err("`cargo metadata` output: a package without name or path".into());
        };
        let domain = domain_dirs
            .iter()
            .any(|d| Path::new(manifest).starts_with(d));
        for t in p["targets"].as_array().into_iter().flatten() {
            let is_bin = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if let (true, Some(name)) = (is_bin, t["name"].as_str()) {
                bins.push(Bin {
                    name: name.to_string(),
                    package: package.to_string(),
                    domain,
                });
            }
        }
    }
    Ok(bins)
}

/// The packages that build the system `m` (its Linux guests `linux`):
/// [`ALWAYS`] and the package of every image its domains and its ELF
/// guests name (a Linux guest's image is made by xtask, not built). Fails,
/// naming the entry and the key, on an image that is no domain binary of
/// `bins`.
pub fn packages_for(
    m: &manifest::Manifest,
    linux: &[manifest::LinuxGuest],
    bins: &[Bin],
) -> Result<Vec<String>> {
    let mut wanted: Vec<(String, &str)> = m
        .domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                format!("domain {i} ({:?})", d.name.as_str()),
                d.image.as_str(),
            )
        })
        .collect();
    for (i, g) in m.guests.iter().enumerate() {
        if !linux.iter().any(|l| l.name == g.name.as_str()) {
            wanted.push((
                format!("guest {i} ({:?})", g.name.as_str()),
                g.image.as_str(),
            ));
        }
    }
    let mut packages = Vec::new();
    for (entry, image) in wanted {
        let Some(bin) = bins.iter().find(|b| b.domain && b.name == image) else {
            let mut known: Vec<&str> = bins
                .iter()
                .filter(|b| b.domain)
                .map(|b| b.name.as_str())
                .collect();
            known.sort_unstable();
            return Err(format!(
                "{entry}: key image: {image:?} is not a domain binary of this workspace \
                 (the binaries of guests/ and services/: {})",
                known.join(", ")
            )
            .into());
        };
        packages.push(bin.package.as_str());
    }
    Ok(with_always(packages))
}

/// [`ALWAYS`], then `packages`, each once, in that order.
pub fn with_always<'p>(packages: impl IntoIterator<Item = &'p str>) -> Vec<String> {
    let mut all: Vec<String> = ALWAYS.iter().map(|p| p.to_string()).collect();
    for p in packages {
        if !all.iter().any(|a| a == p) {
            all.push(p.to_string());
        }
    }
    all
}

/// Every package with a domain binary, and [`ALWAYS`]: what the tests and
/// benchmarks, which boot many systems, build.
pub fn all_packages(bins: &[Bin]) -> Vec<String> {
    with_always(bins.iter().filter(|b| b.domain).map(|b| b.package.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(root: &str) -> String {
        format!(
            r#"{{"packages": [
              {{"name": "kernel", "manifest_path": "{root}/crates/kernel/Cargo.toml",
                "targets": [{{"kind": ["bin"], "name": "kernel"}}]}},
              {{"name": "testdomains", "manifest_path": "{root}/guests/testdomains/Cargo.toml",
                "targets": [{{"kind": ["lib"], "name": "testdomains"}},
                            {{"kind": ["bin"], "name": "ping"}}, {{"kind": ["bin"], "name": "rping"}}]}},
              {{"name": "uart-service", "manifest_path": "{root}/services/uart/Cargo.toml",
                "targets": [{{"kind": ["bin"], "name": "uart"}}]}},
              {{"name": "xtask", "manifest_path": "{root}/xtask/Cargo.toml",
                "targets": [{{"kind": ["bin"], "name": "xtask"}}]}}
            ]}}"#
        )
    }

    fn bins() -> Vec<Bin> {
        parse(metadata("/w").as_bytes(), Path::new("/w")).unwrap()
    }

    #[test]
    fn binaries_are_found_with_their_packages() {
        let b = bins();
        let names: Vec<(&str, &str, bool)> = b
            .iter()
            .map(|b| (b.name.as_str(), b.package.as_str(), b.domain))
            .collect();
        assert_eq!(
            names,
            [
                ("kernel", "kernel", false),
                ("ping", "testdomains", true),
                ("rping", "testdomains", true),
                ("uart", "uart-service", true),
                ("xtask", "xtask", false),
            ]
        );
        assert_eq!(
            all_packages(&b),
            ["kernel", "first-guest", "testdomains", "uart-service"]
        );
        assert!(parse(b"{}", Path::new("/w")).is_err());
        assert!(parse(b"not json", Path::new("/w")).is_err());
    }

    const SYSTEM: &str = r#"
        [[domain]]
        name = "uart"
        image = "uart"
        memory_kib = 2048
        priority = 5

        [[domain]]
        name = "client"
        image = "ping"
        memory_kib = 2048
        priority = 4
    "#;

    #[test]
    fn a_system_builds_only_the_packages_of_its_images() {
        let m = manifest::from_toml(SYSTEM).unwrap();
        assert_eq!(
            packages_for(&m, &[], &bins()).unwrap(),
            ["kernel", "first-guest", "uart-service", "testdomains"]
        );
        let only_uart = &SYSTEM[..SYSTEM
            .find("[[domain]]\n        name = \"client\"")
            .unwrap()];
        let m = manifest::from_toml(only_uart).unwrap();
        assert_eq!(
            packages_for(&m, &[], &bins()).unwrap(),
            ["kernel", "first-guest", "uart-service"]
        );
    }

    #[test]
    fn a_linux_guest_needs_no_package() {
        // Guests need a launcher.
        let launcher = SYSTEM.replace("image = \"ping\"", "image = \"ping\"\nlauncher = true");
        let text = format!(
            "{launcher}\n[[guest]]\nname = \"linux\"\nkind = \"linux\"\nbzimage = \"/boot/vmlinuz\"\n\
             memory_kib = 131072\npriority = 3\n"
        );
        let (m, linux) = manifest::from_toml_with_linux(&text).unwrap();
        assert_eq!(linux.len(), 1);
        assert_eq!(
            packages_for(&m, &linux, &bins()).unwrap(),
            ["kernel", "first-guest", "uart-service", "testdomains"]
        );
        // Taken for an ELF guest, its image would have to be a binary.
        assert!(packages_for(&m, &[], &bins()).is_err());
    }

    #[test]
    fn an_image_that_no_package_builds_is_named_with_its_entry() {
        for (image, why) in [
            ("pong", "not built"),
            ("kernel", "the core"),
            ("xtask", "a host tool"),
        ] {
            let text = SYSTEM.replace("image = \"ping\"", &format!("image = \"{image}\""));
            let m = manifest::from_toml(&text).unwrap();
            let e = packages_for(&m, &[], &bins()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "domain 1 (\"client\"): key image: \"{image}\" is not a domain binary"
                )),
                "{why}: {e}"
            );
            assert!(e.contains("ping, rping, uart"), "{e}");
        }
    }
}
