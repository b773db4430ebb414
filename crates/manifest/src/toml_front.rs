//! The TOML front end used by `cargo xtask` (feature `std`).

use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::Deserialize;
use toml::Spanned;

use crate::{
    validate, ChannelSpec, DomainSpec, GuestSpec, Manifest, ManifestError, Name, PortRange,
    MAX_CHANNELS, MAX_DOMAINS, MAX_GUESTS, NAME_CAPACITY,
};

/// Why a TOML manifest was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TomlError {
    /// The text is not TOML or does not have the manifest's shape (unknown or
    /// missing key, wrong type, integer out of range). The message is toml's
    /// own and names the line and key.
    Parse(String),
    /// More `[[domain]]` or `[[channel]]` tables than a manifest holds.
    TooMany {
        /// `"domain"`, `"channel"` or `"guest"`.
        table: &'static str,
        /// How many are allowed.
        max: usize,
        /// How many were given.
        found: usize,
    },
    /// A value does not fit the manifest: a string longer than its capacity,
    /// too many list items, or an `io_ports` item that is not a port or range.
    Value {
        /// 1-based line of the value in the TOML text.
        line: usize,
        /// `"domain"` or `"channel"`.
        table: &'static str,
        /// Index of the table among those of its kind.
        index: usize,
        /// The key, with the item index for lists (`io_ports[1]`).
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The manifest was read but breaks a rule of [`validate`].
    Invalid(ManifestError),
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TomlError::Parse(msg) => write!(f, "{}", msg.trim_end()),
            TomlError::TooMany { table, max, found } => write!(
                f,
                "{found} [[{table}]] tables given; at most {max} are allowed"
            ),
            TomlError::Value {
                line,
                table,
                index,
                key,
                problem,
            } => write!(f, "line {line}: {table} {index}, key {key}: {problem}"),
            TomlError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TomlError {}

impl From<ManifestError> for TomlError {
    fn from(e: ManifestError) -> Self {
        TomlError::Invalid(e)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlManifest {
    #[serde(default)]
    domain: Vec<TomlDomain>,
    #[serde(default)]
    channel: Vec<TomlChannel>,
    #[serde(default)]
    guest: Vec<TomlGuest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlGuest {
    name: Spanned<String>,
    #[serde(default)]
    image: Option<Spanned<String>>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    bzimage: Option<Spanned<String>>,
    #[serde(default)]
    initrd: Option<Spanned<String>>,
    #[serde(default)]
    cmdline: Option<Spanned<String>>,
    memory_kib: u32,
    priority: u8,
}

/// The command line of a `linux` guest that gives none: the console on
/// the virtual 16550 at 0x3F8, and no ACPI (Bulkhead gives Linux a PC
/// without it).
pub const LINUX_DEFAULT_CMDLINE: &str = "console=ttyS0 acpi=off tsc=reliable";

/// What `cargo xtask` needs to pack a `kind = "linux"` guest into its boot
/// module (a `bzimage_loader::Bundle` named after the guest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxGuest {
    /// The guest's name (also its boot module's).
    pub name: String,
    /// The bzImage: a path, or a name xtask knows.
    pub bzimage: String,
    /// The initrd: a path, a name xtask knows, or none.
    pub initrd: Option<String>,
    /// The kernel command line.
    pub cmdline: String,
}

impl Ctx<'_> {
    /// A guest's image module: its `image` for an ELF guest, its own name
    /// for a `linux` guest; checks which keys go with which kind.
    fn guest_image(&self, g: &TomlGuest) -> Result<Spanned<String>, TomlError> {
        let linux = match &g.kind {
            None => false,
            Some(k) if k.get_ref() == "elf" => false,
            Some(k) if k.get_ref() == "linux" => true,
            Some(k) => {
                return Err(self.error(
                    k,
                    "kind".into(),
                    format!(
                        "{:?} is not a guest kind (\"elf\" or \"linux\")",
                        k.get_ref()
                    ),
                ))
            }
        };
        if linux {
            if let Some(i) = &g.image {
                return Err(self.error(
                    i,
                    "image".into(),
                    "a linux guest takes bzimage and initrd, not image".into(),
                ));
            }
            if g.bzimage.is_none() {
                return Err(self.error(
                    &g.name,
                    "bzimage".into(),
                    "a linux guest needs bzimage".into(),
                ));
            }
            return Ok(g.name.clone());
        }
        for (key, v) in [
            ("bzimage", &g.bzimage),
            ("initrd", &g.initrd),
            ("cmdline", &g.cmdline),
        ] {
            if let Some(v) = v {
                return Err(self.error(
                    v,
                    key.into(),
                    "only a kind = \"linux\" guest takes this key".into(),
                ));
            }
        }
        g.image.clone().ok_or_else(|| {
            self.error(
                &g.name,
                "image".into(),
                "missing: an ELF guest needs image".into(),
            )
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlDomain {
    name: Spanned<String>,
    image: Spanned<String>,
    memory_kib: u32,
    priority: u8,
    #[serde(default)]
    io_ports: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    control: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    restart: bool,
    #[serde(default)]
    spare_kib: u32,
    #[serde(default)]
    launcher: bool,
    #[serde(default)]
    free_memory: bool,
    #[serde(default)]
    platform: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlChannel {
    name: Spanned<String>,
    a: Spanned<String>,
    b: Spanned<String>,
    pages: u8,
    a_gpa: u64,
    b_gpa: u64,
}

/// Where values come from, for error messages.
struct Ctx<'t> {
    text: &'t str,
    table: &'static str,
    index: usize,
}

impl Ctx<'_> {
    fn error<T>(&self, at: &Spanned<T>, key: String, problem: String) -> TomlError {
        let start = at.span().start.min(self.text.len());
        let line = 1 + self.text.as_bytes()[..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        TomlError::Value {
            line,
            table: self.table,
            index: self.index,
            key,
            problem,
        }
    }

    fn name(&self, key: &str, value: &Spanned<String>) -> Result<Name, TomlError> {
        Name::try_from(value.get_ref().as_str()).map_err(|_| {
            self.error(
                value,
                key.to_string(),
                format!("{:?} is longer than {NAME_CAPACITY} bytes", value.get_ref()),
            )
        })
    }

    fn list<T, const N: usize>(
        &self,
        key: &str,
        items: &Option<Spanned<Vec<Spanned<String>>>>,
        mut convert: impl FnMut(String, &Spanned<String>) -> Result<T, TomlError>,
    ) -> Result<heapless::Vec<T, N>, TomlError> {
        let mut out = heapless::Vec::new();
        let Some(items) = items else {
            return Ok(out);
        };
        for (i, item) in items.get_ref().iter().enumerate() {
            let value = convert(format!("{key}[{i}]"), item)?;
            if out.push(value).is_err() {
                return Err(self.error(
                    items,
                    key.to_string(),
                    format!(
                        "{} items given; at most {N} are allowed",
                        items.get_ref().len()
                    ),
                ));
            }
        }
        Ok(out)
    }
}

fn parse_port(s: &str) -> Option<u16> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_range(s: &str) -> Option<PortRange> {
    match s.split_once('-') {
        Some((first, last)) => Some(PortRange {
            first: parse_port(first)?,
            last: parse_port(last)?,
        }),
        None => parse_port(s).map(|p| PortRange { first: p, last: p }),
    }
}

fn convert_domain(ctx: &Ctx<'_>, d: &TomlDomain) -> Result<DomainSpec, TomlError> {
    Ok(DomainSpec {
        name: ctx.name("name", &d.name)?,
        image: ctx.name("image", &d.image)?,
        memory_kib: d.memory_kib,
        priority: d.priority,
        io_ports: ctx.list("io_ports", &d.io_ports, |key, item| {
            parse_range(item.get_ref()).ok_or_else(|| {
                ctx.error(
                    item,
                    key,
                    format!(
                        "{:?} is not a port or port range (\"0x3f8\", \"0x3f8-0x3ff\")",
                        item.get_ref()
                    ),
                )
            })
        })?,
        control: ctx.list("control", &d.control, |key, item| ctx.name(&key, item))?,
        restart: d.restart,
        spare_kib: d.spare_kib,
        launcher: d.launcher,
        free_memory: d.free_memory,
        platform: d.platform,
    })
}

fn convert_channel(ctx: &Ctx<'_>, c: &TomlChannel) -> Result<ChannelSpec, TomlError> {
    Ok(ChannelSpec {
        name: ctx.name("name", &c.name)?,
        a: ctx.name("a", &c.a)?,
        b: ctx.name("b", &c.b)?,
        pages: c.pages,
        a_gpa: c.a_gpa,
        b_gpa: c.b_gpa,
    })
}

/// Reads a manifest from TOML text and validates it.
///
/// The text has `[[domain]]` tables (keys `name`, `image`, `memory_kib`,
/// `priority`, and optional `io_ports`, `control`, `restart`, `spare_kib`,
/// `launcher`, `free_memory`, `platform`), `[[channel]]` tables (keys `name`, `a`, `b`,
/// `pages`, `a_gpa`, `b_gpa`) and `[[guest]]` tables (keys `name`, `image`,
/// `memory_kib`, `priority`; or, with `kind = "linux"`, `bzimage` and
/// optional `initrd` and `cmdline` instead of `image`); unknown keys are
/// errors. See `docs/MANIFEST.md`.
pub fn from_toml(text: &str) -> Result<Manifest, TomlError> {
    let raw: TomlManifest = toml::from_str(text).map_err(|e| TomlError::Parse(e.to_string()))?;
    convert(text, &raw)
}

/// [`from_toml`] and [`linux_guests`] of the same text, parsed once.
pub fn from_toml_with_linux(text: &str) -> Result<(Manifest, Vec<LinuxGuest>), TomlError> {
    let raw: TomlManifest = toml::from_str(text).map_err(|e| TomlError::Parse(e.to_string()))?;
    let m = convert(text, &raw)?;
    let linux = raw
        .guest
        .into_iter()
        .filter(|g| g.kind.as_ref().is_some_and(|k| k.get_ref() == "linux"))
        .map(|g| LinuxGuest {
            name: g.name.into_inner(),
            bzimage: g.bzimage.map(Spanned::into_inner).unwrap_or_default(),
            initrd: g.initrd.map(Spanned::into_inner),
            cmdline: g
                .cmdline
                .map_or_else(|| LINUX_DEFAULT_CMDLINE.to_string(), Spanned::into_inner),
        })
        .collect();
    Ok((m, linux))
}

/// The manifest in `raw`, parsed from `text` (for error positions).
fn convert(text: &str, raw: &TomlManifest) -> Result<Manifest, TomlError> {
    let mut m = Manifest::new();
    for (index, d) in raw.domain.iter().enumerate() {
        let ctx = Ctx {
            text,
            table: "domain",
            index,
        };
        if m.domains.push(convert_domain(&ctx, d)?).is_err() {
            return Err(TomlError::TooMany {
                table: "domain",
                max: MAX_DOMAINS,
                found: raw.domain.len(),
            });
        }
    }
    for (index, c) in raw.channel.iter().enumerate() {
        let ctx = Ctx {
            text,
            table: "channel",
            index,
        };
        if m.channels.push(convert_channel(&ctx, c)?).is_err() {
            return Err(TomlError::TooMany {
                table: "channel",
                max: MAX_CHANNELS,
                found: raw.channel.len(),
            });
        }
    }
    for (index, g) in raw.guest.iter().enumerate() {
        let ctx = Ctx {
            text,
            table: "guest",
            index,
        };
        let image = ctx.guest_image(g)?;
        let spec = GuestSpec {
            name: ctx.name("name", &g.name)?,
            image: ctx.name("image", &image)?,
            memory_kib: g.memory_kib,
            priority: g.priority,
        };
        if m.guests.push(spec).is_err() {
            return Err(TomlError::TooMany {
                table: "guest",
                max: MAX_GUESTS,
                found: raw.guest.len(),
            });
        }
    }
    validate(&m)?;
    Ok(m)
}

/// The `kind = "linux"` guests of a manifest's TOML text, for xtask to
/// pack; the text is checked as by [`from_toml`] first.
pub fn linux_guests(text: &str) -> Result<Vec<LinuxGuest>, TomlError> {
    from_toml_with_linux(text).map(|(_, linux)| linux)
}

/// Encodes a manifest for the core (the bytes of the boot module).
///
/// Does not validate `m`; [`from_toml`] already has.
pub fn to_bytes(m: &Manifest) -> Vec<u8> {
    let mut buf = [0u8; crate::MAX_ENCODED_LEN];
    match crate::encode(m, &mut buf) {
        Ok(bytes) => bytes.to_vec(),
        // MAX_ENCODED_LEN bounds every manifest's encoding (tested).
        Err(_) => unreachable!("MAX_ENCODED_LEN is too small"),
    }
}

/// Memory a system may give its domains on the machine xtask boots (the
/// emulator's 256 MiB minus what the core and the boot modules need).
pub const MACHINE_KIB: u64 = 224 * 1024;

/// Checks of a whole system that the core cannot make from one manifest
/// entry at a time: the memory of all domains (and their spare memory)
/// fits the machine, and no channel lets a domain wait on a peer of lower
/// priority (`a` calls `b`: a priority inversion when `b` runs below `a`).
/// Each problem is one line naming the entry and the key.
pub fn check_system(m: &Manifest, machine_kib: u64) -> Result<(), String> {
    let total: u64 = m
        .domains
        .iter()
        .map(|d| d.memory_kib as u64 + d.spare_kib as u64)
        .sum();
    if total > machine_kib {
        return Err(format!(
            "the domains' memory_kib and spare_kib add up to {total} KiB, more than the {machine_kib} KiB the machine has for them"
        ));
    }
    for (i, c) in m.channels.iter().enumerate() {
        let prio = |name: &str| {
            m.domains
                .iter()
                .find(|d| d.name.as_str() == name)
                .map(|d| d.priority)
        };
        if let (Some(pa), Some(pb)) = (prio(c.a.as_str()), prio(c.b.as_str())) {
            if pb < pa {
                return Err(format!(
                    "channel {i} ({:?}): key b: {:?} (priority {pb}) serves {:?} (priority {pa}) at a lower priority: a priority inversion",
                    c.name.as_str(),
                    c.b.as_str(),
                    c.a.as_str()
                ));
            }
        }
    }
    Ok(())
}
