//! The Linux test guest: Debian's cloud kernel and `busybox-static`,
//! fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a
//! cache outside the source tree (fetched once, reused after), and the
//! initramfs xtask builds around busybox (cpio "newc", written here).
//!
//! Nothing here is committed: the kernel is one nobody here built.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{step, Result};

/// The metapackage that depends on the current cloud kernel.
const KERNEL_META: &str = "linux-image-cloud-amd64";
/// The statically linked busybox the initramfs runs.
const BUSYBOX: &str = "busybox-static";

/// The line `/init` prints once userspace runs (tests and the bench wait
/// for it).
pub const MARKER: &str = "BULKHEAD-LINUX-INIT";
/// `bzimage = "debian-cloud"` in a manifest: Debian's cloud kernel,
/// fetched and cached by xtask.
pub const DEBIAN_KERNEL: &str = "debian-cloud";
/// `initrd = "busybox"` in a manifest: the busybox initramfs xtask builds.
pub const BUSYBOX_INITRAMFS: &str = "busybox";

/// The line `/init` prints when it is about to power off.
pub const DONE: &str = "BULKHEAD-LINUX-DONE";
/// The command line of the test guest: the console on the 16550 at
/// 0x3F8, no crypto self-tests (seconds under Bochs), no ACPI (Linux then
/// runs on the PIC and the PIT), `/init` powers off without a shell.
pub const CMDLINE: &str = "console=ttyS0 cryptomgr.notests quiet acpi=off bulkhead.noshell";

/// The kernel and busybox, as cached.
#[derive(Debug, Clone)]
pub struct Assets {
    /// The bzImage.
    pub bzimage: PathBuf,
    /// The static busybox binary.
    pub busybox: PathBuf,
}

/// Where downloads are kept: `$BULKHEAD_CACHE`, else
/// `$XDG_CACHE_HOME/bulkhead`, else `~/.cache/bulkhead`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BULKHEAD_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("bulkhead");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache/bulkhead")
}

/// The cached kernel and busybox, fetching whichever is missing.
pub fn assets() -> Result<Assets> {
    let dir = cache_dir().join("linux");
    fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the download cache {}: {e}", dir.display()))?;
    let bzimage = match cached_kernel(&dir)? {
        Some(k) => k,
        None => fetch_kernel(&dir)?,
    };
    let busybox = dir.join("busybox");
    if !busybox.is_file() {
        fetch_busybox(&dir, &busybox)?;
    }
    Ok(Assets { bzimage, busybox })
}

/// A kernel fetched before (`vmlinuz-*-cloud-amd64` in the cache).
fn cached_kernel(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64"))
        })
        .collect();
    found.sort();
    Ok(found.pop())
}

fn need_tools() -> Result<()> {
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        if !crate::prereq::on_path(tool) {
            return Err(format!(
                "fetching the Linux test guest needs {tool} (a Debian system); \
                 or put a bzImage named vmlinuz-VERSION-cloud-amd64 and a static \
                 busybox named busybox into {}",
                cache_dir().join("linux").display()
            )
            .into());
        }
    }
    Ok(())
}

/// The versioned kernel package the metapackage depends on now.
fn kernel_package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", KERNEL_META])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let package = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"));
    match package {
        Some(p) => Ok(p.to_string()),
        None if !out.status.success() || text.trim().is_empty() => Err(format!(
            "apt-cache knows no {KERNEL_META}: run `apt-get update` (as root), then again"
        )
        .into()),
        None => Err(format!("{KERNEL_META} depends on no cloud kernel package:\n{text}").into()),
    }
}

/// Downloads `package` into a scratch directory of `dir` and unpacks it
/// there; returns the unpacked tree.
fn download(dir: &Path, package: &str) -> Result<PathBuf> {
    let scratch = dir.join(format!("unpack-{package}"));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    step(&format!(
        "fetching {package} (apt-get download; cached in {})",
        dir.display()
    ));
    let status = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(&scratch)
        .status()?;
    if !status.success() {
        return Err(format!(
            "apt-get download {package} failed ({status}); run `apt-get update` and retry"
        )
        .into());
    }
    let deb = fs::read_dir(&scratch)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {package} left no .deb"))?;
    let tree = scratch.join("tree");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .status()?;
    if !status.success() {
        return Err(format!("dpkg-deb -x {} failed ({status})", deb.display()).into());
    }
    Ok(tree)
}

fn fetch_kernel(dir: &Path) -> Result<PathBuf> {
    need_tools()?;
    let package = kernel_package()?;
    let tree = download(dir, &package)?;
    let boot = tree.join("boot");
    let image = fs::read_dir(&boot)
        .map_err(|e| format!("{package} has no /boot: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("{package} holds no vmlinuz"))?;
    let name = image.file_name().unwrap_or_default().to_owned();
    let dest = dir.join(name);
    fs::copy(&image, &dest)?;
    let _ = fs::remove_dir_all(tree.parent().unwrap_or(&tree));
    Ok(dest)
}

fn fetch_busybox(dir: &Path, dest: &Path) -> Result<()> {
    need_tools()?;
    let tree = download(dir, BUSYBOX)?;
    let bin = tree.join("bin/busybox");
    if !bin.is_file() {
        return Err(format!("{BUSYBOX} holds no bin/busybox").into());
    }
    fs::copy(&bin, dest)?;
    let _ = fs::remove_dir_all(tree.parent().unwrap_or(&tree));
    Ok(())
}

/// The `/init` the initramfs runs: mount proc and sys, print the marker
/// and some facts, run a few commands; then an interactive shell on the
/// console (unless the command line says `bulkhead.noshell`), and power
/// off when it ends (with `acpi=off` that halts: xtask stops the emulator
/// on the [`DONE`] line).
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "BULKHEAD-LINUX-INIT"
echo "kernel: $(uname -r)"
grep -m1 '^flags' /proc/cpuinfo
echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
echo "memory: $(grep MemTotal /proc/meminfo)"
echo "uptime: $(cat /proc/uptime)"
ls /
if ! grep -q bulkhead.noshell /proc/cmdline; then
    echo "BULKHEAD-LINUX-SHELL"
    setsid cttyhack sh
fi
echo "BULKHEAD-LINUX-DONE"
# The console drains at the UART's pace; poweroff -f does not wait.
sleep 2
poweroff -f
"#;

/// The bzImage a manifest names: [`DEBIAN_KERNEL`] for the cached Debian
/// kernel, else a path (relative to the workspace).
fn resolve_bzimage(name: &str) -> Result<PathBuf> {
    if name == DEBIAN_KERNEL {
        return Ok(assets()?.bzimage);
    }
    Ok(crate::workspace_root().join(name))
}

/// Builds the busybox test initramfs (from the cached `busybox-static`)
/// in xtask's output directory; returns its path.
pub fn busybox_initramfs() -> Result<PathBuf> {
    let out = crate::image::out_dir().join("linux/initramfs.cpio");
    initramfs(&assets()?.busybox, &out)?;
    Ok(out)
}

/// The initrd a manifest names: [`BUSYBOX_INITRAMFS`] for the busybox
/// initramfs xtask builds, else a path (relative to the workspace).
fn resolve_initrd(name: &str) -> Result<PathBuf> {
    if name == BUSYBOX_INITRAMFS {
        return busybox_initramfs();
    }
    Ok(crate::workspace_root().join(name))
}

/// Packs a `linux` guest of a manifest into its boot module at `out`: a
/// `bzimage_loader::Bundle` (header, command line, bzImage, initrd).
pub fn bundle(guest: &manifest::LinuxGuest, out: &Path) -> Result<()> {
    let bzimage = resolve_bzimage(&guest.bzimage)?;
    let kernel = fs::read(&bzimage).map_err(|e| format!("bzimage {}: {e}", bzimage.display()))?;
    // Refused here rather than when the guest starts.
    bzimage_loader::BzImage::parse(&kernel)
        .map_err(|e| format!("bzimage {}: {e}", bzimage.display()))?;
    let initrd = match &guest.initrd {
        Some(name) => {
            let path = resolve_initrd(name)?;
            fs::read(&path).map_err(|e| format!("initrd {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let cmdline = guest.cmdline.as_bytes();
    let header = bzimage_loader::Bundle::header(
        u32::try_from(cmdline.len()).map_err(|_| "command line too long")?,
        kernel.len() as u64,
        initrd.len() as u64,
    );
    let mut bytes = Vec::with_capacity(header.len() + cmdline.len() + kernel.len() + initrd.len());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(cmdline);
    bytes.extend_from_slice(&kernel);
    bytes.extend_from_slice(&initrd);
    fs::write(out, bytes)?;
    Ok(())
}

/// A system manifest with the services of `systems/linux.toml` and one
/// Linux guest, `linux`, from these files (`cargo xtask run --bzimage`);
/// returns where it was written.
pub fn system_for(
    bzimage: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    memory_mib: u32,
) -> Result<PathBuf> {
    let base = crate::workspace_root().join("systems/linux.toml");
    let text = fs::read_to_string(&base)?;
    // The services: everything before the first guest.
    let services = text.split("[[guest]]").next().unwrap_or_default();
    let absolute = |p: &Path| -> Result<String> {
        let p = fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p.to_string_lossy().into_owned())
    };
    let mut guest = format!(
        "[[guest]]\nname = \"linux\"\nkind = \"linux\"\nbzimage = {:?}\n",
        absolute(bzimage)?
    );
    if let Some(i) = initrd {
        guest.push_str(&format!("initrd = {:?}\n", absolute(i)?));
    }
    guest.push_str(&format!(
        "cmdline = {cmdline:?}\nmemory_kib = {}\npriority = 3\n",
        u64::from(memory_mib) * 1024
    ));
    let out = crate::image::out_dir().join("linux/run.toml");
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&out, format!("{services}{guest}"))?;
    Ok(out)
}

/// Builds the initramfs (uncompressed cpio "newc") around `busybox` into
/// `out`: `/init`, `/bin/busybox`, `/dev/console` and the mount points.
pub fn initramfs(busybox: &Path, out: &Path) -> Result<()> {
    let bb = fs::read(busybox).map_err(|e| format!("read {}: {e}", busybox.display()))?;
    let mut w = Cpio::default();
    for d in [".", "bin", "dev", "proc", "sys", "tmp", "root"] {
        w.dir(d);
    }
    // The console the kernel opens for /init (character device 5:1).
    w.node("dev/console", 0o020_600, (5, 1));
    w.file("bin/busybox", 0o100_755, &bb);
    w.file("init", 0o100_755, INIT.as_bytes());
    let bytes = w.finish();
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(out, bytes)?;
    Ok(())
}

/// A cpio archive in the "newc" format (magic 070701): a header of
/// thirteen 8-digit hex fields, the NUL-terminated name padded to 4
/// bytes, the data padded to 4 bytes; a `TRAILER!!!` entry ends it.
#[derive(Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, nlink: u32, dev: (u32, u32), data: &[u8]) {
        self.inode += 1;
        let name_len = name.len() + 1;
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            dev.0,
            dev.1,
            name_len as u32,
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// A directory (mode 0755).
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, 2, (0, 0), &[]);
    }

    /// A regular file with `mode` (type bits included).
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, mode, 1, (0, 0), data);
    }

    /// A device node with `mode` (type bits included) and (major, minor).
    pub fn node(&mut self, name: &str, mode: u32, dev: (u32, u32)) {
        self.entry(name, mode, 1, dev, &[]);
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry read back: name, mode, (rdev major, minor), data.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Reads the entries back.
    fn parse(mut b: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut at = 0usize;
        let hex = |s: &[u8]| u32::from_str_radix(std::str::from_utf8(s).unwrap(), 16).unwrap();
        loop {
            assert_eq!(&b[..6], b"070701", "magic at {at}");
            let f = |i: usize| hex(&b[6 + i * 8..6 + i * 8 + 8]);
            let (mode, size, rmaj, rmin, namesize) =
                (f(1), f(6) as usize, f(9), f(10), f(11) as usize);
            let name = std::str::from_utf8(&b[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[110 + namesize - 1], 0);
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = b[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            at += next;
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty());
                return out;
            }
            out.push((name, mode, (rmaj, rmin), data));
        }
    }

    #[test]
    fn newc_entries_read_back_with_their_padding() {
        let mut w = Cpio::default();
        w.dir(".");
        w.node("dev/console", 0o020_600, (5, 1));
        w.file("init", 0o100_755, b"#!/bin/sh\n");
        w.file("a", 0o100_644, b"12345");
        let bytes = w.finish();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].0, ".");
        assert_eq!(
            entries[1],
            ("dev/console".into(), 0o020_600, (5, 1), Vec::new())
        );
        assert_eq!(entries[2].3, b"#!/bin/sh\n");
        assert_eq!(
            entries[3],
            ("a".into(), 0o100_644, (0, 0), b"12345".to_vec())
        );
    }

    #[test]
    fn the_initramfs_holds_init_busybox_and_the_console() {
        let dir = std::env::temp_dir().join(format!("bulkhead-cpio-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let bb = dir.join("busybox");
        fs::write(&bb, b"\x7fELF not really").unwrap();
        let out = dir.join("initramfs.cpio");
        initramfs(&bb, &out).unwrap();
        let entries = parse(&fs::read(&out).unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        for want in ["init", "bin/busybox", "dev/console", "proc", "sys"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let init = entries.iter().find(|e| e.0 == "init").unwrap();
        assert_eq!(init.1 & 0o777, 0o755);
        assert!(String::from_utf8_lossy(&init.3).contains(MARKER));
        let _ = fs::remove_dir_all(&dir);
    }
}
