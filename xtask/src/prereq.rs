//! Checking, and where possible installing, what the commands need.

use std::path::Path;
use std::process::Command;

use crate::{step, Result};

/// Something a command needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The `x86_64-unknown-none` Rust target.
    BareMetalTarget,
    /// GRUB and the ISO tools, to make the boot image.
    Grub,
    /// Bochs with its BIOS images.
    Bochs,
    /// QEMU for x86_64.
    Qemu,
}

/// A file or program, the Debian package that provides it.
struct Item {
    what: &'static str,
    path: Option<&'static str>,
    program: Option<&'static str>,
    /// Debian packages (space-separated) that provide it.
    package: &'static str,
}

fn items(need: Need) -> &'static [Item] {
    match need {
        Need::BareMetalTarget => &[],
        Need::Grub => &[
            Item {
                what: "grub-mkrescue",
                path: None,
                program: Some("grub-mkrescue"),
                package: "grub-common",
            },
            Item {
                what: "GRUB for BIOS (i386-pc)",
                path: Some("/usr/lib/grub/i386-pc/modinfo.sh"),
                program: None,
                package: "grub-pc-bin",
            },
            Item {
                what: "xorriso",
                path: None,
                program: Some("xorriso"),
                package: "xorriso",
            },
            Item {
                what: "mformat",
                path: None,
                program: Some("mformat"),
                package: "mtools",
            },
        ],
        Need::Bochs => &[
            Item {
                what: "bochs",
                path: None,
                program: Some("bochs"),
                package: "bochs",
            },
            Item {
                what: "the Bochs BIOS",
                path: Some("/usr/share/bochs/BIOS-bochs-latest"),
                program: None,
                package: "bochsbios",
            },
            Item {
                what: "the VGA BIOS",
                path: Some("/usr/share/vgabios/vgabios.bin"),
                program: None,
                package: "vgabios",
            },
        ],
        Need::Qemu => &[Item {
            what: "qemu-system-x86_64",
            path: None,
            program: Some("qemu-system-x86_64"),
            package: "qemu-system-x86",
        }],
    }
}

/// Whether `program` is on the PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn present(item: &Item) -> bool {
    item.path.is_none_or(|p| Path::new(p).exists()) && item.program.is_none_or(on_path)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes sure everything in `needs` is there: installs missing packages with
/// apt-get when running as root, adds the Rust target with rustup, and
/// otherwise stops with the exact command to run.
pub fn ensure(needs: &[Need]) -> Result<()> {
    if needs.contains(&Need::BareMetalTarget) {
        ensure_target()?;
    }
    let missing: Vec<&Item> = needs
        .iter()
        .flat_map(|&n| items(n))
        .filter(|i| !present(i))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing
        .iter()
        .flat_map(|i| i.package.split_whitespace())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    let names: Vec<&str> = missing.iter().map(|i| i.what).collect();
    let command = format!("sudo apt-get install -y {}", packages.join(" "));
    if !(is_root() && on_path("apt-get")) {
        return Err(format!("missing: {}.\n  Install with: {command}", names.join(", ")).into());
    }
    step(&format!(
        "installing {} (missing: {})",
        packages.join(" "),
        names.join(", ")
    ));
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed ({status}); run: {command}",
                args.join(" ")
            )
            .into())
        }
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&packages);
    apt(&args)?;
    let still: Vec<&str> = missing
        .iter()
        .filter(|i| !present(i))
        .map(|i| i.what)
        .collect();
    if !still.is_empty() {
        return Err(format!("still missing after installing: {}", still.join(", ")).into());
    }
    Ok(())
}

fn ensure_target() -> Result<()> {
    const TARGET: &str = "x86_64-unknown-none";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(out) = installed else {
        // Without rustup, trust the toolchain; the build says what is missing.
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    step(&format!("adding the Rust target {TARGET}"));
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()?;
    if !status.success() {
        return Err(
            format!("could not add the Rust target; run: rustup target add {TARGET}").into(),
        );
    }
    Ok(())
}
