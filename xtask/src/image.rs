//! Building the core and the guest for bare metal, and the GRUB ISO.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSegment};

use crate::{step, workspace_root, Result};

/// Where the first guest is loaded and entered (must match its linker script
/// and the core's `GUEST_IMAGE`).
pub const GUEST_BASE: u64 = 0x20_0000;
/// Largest flat guest image the core accepts (4 MiB of RAM minus the base).
pub const GUEST_MAX: u64 = (4 << 20) - GUEST_BASE;

/// The bare-metal binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The core (Multiboot2 ELF).
    pub kernel: PathBuf,
    /// The first guest, flattened.
    pub first: PathBuf,
    /// Where the domain images (ELF) are, by image name.
    pub domains: PathBuf,
}

pub fn out_dir() -> PathBuf {
    workspace_root().join("target").join("bulkhead")
}

/// Builds the core, the first guest and every domain binary for
/// `x86_64-unknown-none` (release): what the tests and the benchmarks, which
/// boot many systems, need.
pub fn build_binaries() -> Result<Binaries> {
    step("building the core, the first guest and every domain binary for x86_64-unknown-none");
    build_packages(&crate::bins::all_packages(&crate::bins::list()?))
}

/// Builds `packages` for `x86_64-unknown-none` (release); they include the
/// core and the first guest.
///
/// One `cargo build` per package: built together, cargo would unify the
/// features of their shared dependencies (the services turn on `rt`'s and
/// `hypercall-abi`'s `defmt`), so the core and a test domain would come out
/// differently depending on which other packages a system lists. Alone,
/// each binary is the same whatever the system, and the same as in the
/// tests.
fn build_packages(packages: &[String]) -> Result<Binaries> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for p in packages {
        let status = Command::new(&cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--release",
                "--target",
                "x86_64-unknown-none",
                "-p",
                p,
            ])
            .status()?;
        if !status.success() {
            return Err(format!("building {p} for x86_64-unknown-none failed").into());
        }
    }
    let bin = domains_dir();
    let dir = out_dir();
    fs::create_dir_all(&dir)?;
    let first = dir.join("first.bin");
    let elf = fs::read(bin.join("first"))?;
    let flat = flatten(&elf, GUEST_BASE, GUEST_MAX)?;
    fs::write(&first, flat)?;
    Ok(Binaries {
        kernel: bin.join("kernel"),
        first,
        domains: bin,
    })
}

/// Where `cargo build --release --target x86_64-unknown-none` puts the
/// core's and the domains' ELF files.
pub fn domains_dir() -> PathBuf {
    workspace_root().join("target/x86_64-unknown-none/release")
}

/// The decoder of the `defmt` log frames of `system`'s domains (built in
/// `domains`); `None` without a system.
pub fn log_decoder(
    domains: &Path,
    system: Option<&Path>,
) -> Result<Option<std::sync::Arc<crate::logs::Decoder>>> {
    let Some(path) = system else {
        return Ok(None);
    };
    let m = load_system(path)?;
    let d = crate::logs::Decoder::for_system(domains, &m)?;
    Ok(Some(std::sync::Arc::new(d)))
}

/// Turns an ELF executable into the bytes of memory from `base` up to the end
/// of its last loadable segment. The entry point must be `base`.
pub fn flatten(elf: &[u8], base: u64, max: u64) -> Result<Vec<u8>> {
    let file = object::File::parse(elf).map_err(|e| format!("guest ELF: {e}"))?;
    if file.entry() != base {
        return Err(format!(
            "guest entry point {:#x} is not its load address {base:#x}",
            file.entry()
        )
        .into());
    }
    let mut image: Vec<u8> = Vec::new();
    for segment in file.segments() {
        let (addr, size) = (segment.address(), segment.size());
        if size == 0 {
            continue;
        }
        let end = addr.checked_add(size).ok_or("guest segment wraps around")?;
        if addr < base || end - base > max {
            return Err(format!(
                "guest segment {addr:#x}+{size:#x} lies outside {base:#x}..{:#x}",
                base + max
            )
            .into());
        }
        let data = segment.data().map_err(|e| format!("guest segment: {e}"))?;
        let start = (addr - base) as usize;
        if image.len() < (end - base) as usize {
            image.resize((end - base) as usize, 0);
        }
        image[start..start + data.len()].copy_from_slice(data);
    }
    if image.is_empty() {
        return Err("guest ELF has no loadable segments".into());
    }
    Ok(image)
}

/// Reads and checks a system manifest (TOML), naming the file in errors.
pub fn load_system(path: &Path) -> Result<manifest::Manifest> {
    Ok(read_system(path)?.0)
}

/// [`load_system`], with its Linux guests (what xtask packs for them).
fn read_system(path: &Path) -> Result<(manifest::Manifest, Vec<manifest::LinuxGuest>)> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (m, linux) =
        manifest::from_toml_with_linux(&text).map_err(|e| format!("{}: {e}", display(path)))?;
    manifest::check_system(&m, manifest::MACHINE_KIB)
        .map_err(|e| format!("{}: {e}", display(path)))?;
    Ok((m, linux))
}

/// Makes a GRUB ISO named `name` that boots the core with `cmdline`, the
/// first guest, and, when `system` names a manifest, its domains' and
/// guests' images.
pub fn make_iso(
    bins: &Binaries,
    name: &str,
    cmdline: &str,
    system: Option<&Path>,
) -> Result<PathBuf> {
    let dir = out_dir();
    let tree = dir.join(format!("iso-{name}"));
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(tree.join("boot/grub"))?;
    copy_loadable(&bins.kernel, &tree.join("boot/bulkhead"))?;
    fs::copy(&bins.first, tree.join("boot/first.bin"))?;
    let mut modules = String::from("    module2 --nounzip /boot/first.bin first\n");
    if let Some(path) = system {
        let (m, linux) = read_system(path)?;
        for g in &linux {
            let bundle = tree.join(format!("boot/{}.linux", g.name));
            crate::linux::bundle(g, &bundle)
                .map_err(|e| format!("{}: guest {}: {e}", display(path), g.name))?;
            modules.push_str(&format!(
                "    module2 --nounzip /boot/{0}.linux {0}\n",
                g.name
            ));
        }
        let mut images: Vec<&str> = m
            .domains
            .iter()
            .map(|d| d.image.as_str())
            .chain(
                m.guests
                    .iter()
                    .filter(|g| !linux.iter().any(|l| l.name == g.name.as_str()))
                    .map(|g| g.image.as_str()),
            )
            .collect();
        images.sort_unstable();
        images.dedup();
        for image in images {
            let elf = bins.domains.join(image);
            if !elf.is_file() {
                return Err(format!(
                    "{}: image {image:?} is not a domain binary built by xtask (looked for {})",
                    display(path),
                    display(&elf)
                )
                .into());
            }
            copy_loadable(&elf, &tree.join(format!("boot/{image}.elf")))?;
            modules.push_str(&format!(
                "    module2 --nounzip /boot/{image}.elf {image}\n"
            ));
        }
        fs::write(tree.join("boot/manifest.bin"), manifest::to_bytes(&m))?;
        modules.push_str("    module2 --nounzip /boot/manifest.bin manifest\n");
    }
    fs::write(
        tree.join("boot/grub/grub.cfg"),
        format!(
            "set timeout=0\nset default=0\n\nmenuentry \"Bulkhead\" {{\n    \
             multiboot2 /boot/bulkhead {cmdline}\n{modules}    boot\n}}\n"
        ),
    )?;
    mkrescue(&tree, &dir.join(format!("{name}.iso")))
}

/// Copies the ELF file `src` to `dst` with only what a loader reads: the
/// ELF header, the program headers and the bytes of every segment, without
/// the section headers and the sections outside segments (debug
/// information, symbols, `.defmt`). The boot modules shrink from about a
/// megabyte each to tens of kilobytes, and GRUB reads them under Bochs at a
/// few megabytes per second; the host keeps the full files to decode
/// `defmt` logs and symbolise addresses.
fn copy_loadable(src: &Path, dst: &Path) -> Result<()> {
    let bytes = fs::read(src)?;
    let end = loadable_len(&bytes).map_err(|e| format!("{}: {e}", display(src)))?;
    let mut out = bytes[..end].to_vec();
    // e_shoff, e_shentsize, e_shnum, e_shstrndx: no section headers.
    out[0x28..0x30].fill(0);
    out[0x3a..0x40].fill(0);
    fs::write(dst, out)?;
    Ok(())
}

/// Length of the prefix of the ELF64 little-endian file `elf` that holds
/// its header, its program headers and every segment's file bytes.
fn loadable_len(elf: &[u8]) -> std::result::Result<usize, String> {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let header = object::elf::FileHeader64::<object::LittleEndian>::parse(elf)
        .map_err(|e| format!("not a 64-bit little-endian ELF file: {e}"))?;
    let endian = object::LittleEndian;
    let headers = header
        .program_headers(endian, elf)
        .map_err(|e| format!("program headers: {e}"))?;
    let table_end = header.e_phoff(endian) + std::mem::size_of_val(headers) as u64;
    let mut end = table_end.max(std::mem::size_of_val(header) as u64);
    for ph in headers {
        let (offset, filesz) = (ph.p_offset(endian), ph.p_filesz(endian));
        end = end.max(offset.checked_add(filesz).ok_or("segment out of range")?);
    }
    let end = usize::try_from(end).map_err(|_| "segment out of range")?;
    if end > elf.len() {
        return Err(format!("a segment ends at {end:#x}, past the file's end"));
    }
    Ok(end)
}

/// Makes the GRUB ISO `iso` of the file tree `tree`.
fn mkrescue(tree: &Path, iso: &Path) -> Result<PathBuf> {
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(iso)
        .arg(tree)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(iso.to_path_buf())
}

/// Makes a GRUB ISO that boots Linux bare (no Bulkhead): `bzimage` with
/// `cmdline` and `initrd` through GRUB's `linux` and `initrd` commands.
pub fn make_linux_iso(name: &str, bzimage: &Path, initrd: &Path, cmdline: &str) -> Result<PathBuf> {
    let dir = out_dir();
    let tree = dir.join(format!("iso-{name}"));
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(tree.join("boot/grub"))?;
    fs::copy(bzimage, tree.join("boot/vmlinuz"))?;
    fs::copy(initrd, tree.join("boot/initramfs.cpio"))?;
    fs::write(
        tree.join("boot/grub/grub.cfg"),
        format!(
            "set timeout=0\nset default=0\n\nmenuentry \"Linux\" {{\n    \
             linux /boot/vmlinuz {cmdline}\n    initrd /boot/initramfs.cpio\n    boot\n}}\n"
        ),
    )?;
    mkrescue(&tree, &dir.join(format!("{name}.iso")))
}

/// Builds what `system` uses (the core and the first guest without one)
/// and makes the ISO for `cmdline` and `system`.
pub fn build(name: &str, cmdline: &str, system: Option<&Path>) -> Result<PathBuf> {
    let packages = match system {
        // Checked, images included, before anything is compiled.
        Some(path) => {
            let (m, linux) = read_system(path)?;
            let packages = crate::bins::packages_for(&m, &linux, &crate::bins::list()?)
                .map_err(|e| format!("{}: {e}", display(path)))?;
            step(&format!(
                "building what {} uses for x86_64-unknown-none: {}",
                display(path),
                packages.join(", ")
            ));
            packages
        }
        None => {
            step("building the core and the first guest for x86_64-unknown-none");
            crate::bins::with_always([])
        }
    };
    let bins = build_packages(&packages)?;
    step(&format!("making the boot image ({cmdline:?})"));
    make_iso(&bins, name, cmdline, system)
}

/// Shows a path relative to the workspace when it is inside it.
pub fn display(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 executable with one PT_LOAD segment.
    fn elf(entry: u64, vaddr: u64, data: &[u8], memsz: u64) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = &mut f[64..120];
        ph[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&5u32.to_le_bytes());
        ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // offset
        ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
        ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
        ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        ph[40..48].copy_from_slice(&memsz.to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn every_system_manifest_in_the_tree_is_valid() {
        let dir = crate::workspace_root().join("systems");
        let bins = crate::bins::list().unwrap();
        let mut n = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let (m, linux) = read_system(&path).unwrap_or_else(|e| panic!("{e}"));
                crate::bins::packages_for(&m, &linux, &bins)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 5, "only {n} manifests found in {}", dir.display());
    }

    #[test]
    fn flatten_copies_segments_and_zero_fills_bss() {
        let e = elf(0x20_0000, 0x20_0000, &[1, 2, 3], 8);
        assert_eq!(
            flatten(&e, 0x20_0000, 0x1000).unwrap(),
            [1, 2, 3, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn flatten_refuses_bad_guests() {
        assert!(flatten(b"not an elf", 0x20_0000, 0x1000).is_err());
        let wrong_entry = elf(0x20_0010, 0x20_0000, &[1], 1);
        assert!(flatten(&wrong_entry, 0x20_0000, 0x1000).is_err());
        let too_big = elf(0x20_0000, 0x20_0000, &[1], 0x2000);
        assert!(flatten(&too_big, 0x20_0000, 0x1000).is_err());
        let below = elf(0x20_0000, 0x10_0000, &[1], 1);
        assert!(flatten(&below, 0x20_0000, 0x1000).is_err());
        let wraps = elf(0x20_0000, u64::MAX - 1, &[1], 8);
        assert!(flatten(&wraps, 0x20_0000, 0x1000).is_err());
    }
}

#[cfg(test)]
mod loadable_tests {
    use super::loadable_len;

    /// A 64-bit ELF header with `segments` (offset, file size) program
    /// headers right after it, padded to `len` bytes.
    fn elf(segments: &[(u64, u64)], len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        v[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        v[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        v[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        v[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (off, size)) in segments.iter().enumerate() {
            let ph = 64 + 56 * i;
            v[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            v[ph + 32..ph + 40].copy_from_slice(&size.to_le_bytes());
        }
        v
    }

    #[test]
    fn keeps_the_headers_and_every_segment() {
        assert_eq!(
            loadable_len(&elf(&[(0x1000, 0x10), (0x200, 0x30)], 0x2000)),
            Ok(0x1010)
        );
        // No segment: the header and the (empty) table.
        assert_eq!(loadable_len(&elf(&[], 0x100)), Ok(64));
        // A segment with no file bytes ends where it starts.
        assert_eq!(loadable_len(&elf(&[(0x180, 0)], 0x200)), Ok(0x180));
    }

    #[test]
    fn refuses_what_is_not_a_whole_elf64_file() {
        assert!(loadable_len(b"\x7fELF\x01\x01").is_err());
        assert!(loadable_len(&elf(&[(0x1000, 0x10)], 0x800)).is_err());
        assert!(loadable_len(&elf(&[(u64::MAX, 2)], 0x200)).is_err());
        let mut short = elf(&[(0x100, 0x10)], 0x200);
        short[0x38] = 40; // more headers than the file holds
        assert!(loadable_len(&short).is_err());
    }
}
