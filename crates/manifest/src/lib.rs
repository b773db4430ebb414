//! Bulkhead's boot manifest: which domains the core creates at boot and how
//! they are connected by shared-memory channels.
//!
//! This crate owns the manifest's types ([`Manifest`], [`DomainSpec`],
//! [`PortRange`], [`ChannelSpec`]), its binary encoding (`postcard`, see
//! [`encode`] / [`decode`]) and its validation ([`validate`]). `cargo xtask`
//! builds a manifest from a TOML file with the `std` feature's `from_toml`,
//! checks it and encodes it with `to_bytes`; the core (no_std, no allocator)
//! receives the bytes as a boot module and runs [`decode`], which validates
//! again.
//!
//! It must never trust encoded bytes (every decoded manifest is validated
//! before it is returned), never panic on any input, and never allocate in
//! the no_std path: all wire types are fixed-capacity `heapless` containers,
//! so a decoded [`Manifest`] lives entirely on the stack or in a static
//! (about 2.2 KiB).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

mod error;
mod validate;

#[cfg(feature = "std")]
mod toml_front;

use serde::{Deserialize, Serialize};

pub use error::{End, ManifestError, Problem};
pub use validate::validate;

#[cfg(feature = "std")]
pub use toml_front::{
    check_system, from_toml, from_toml_with_linux, linux_guests, to_bytes, LinuxGuest, TomlError,
    LINUX_DEFAULT_CMDLINE, MACHINE_KIB,
};

/// The four bytes every encoded manifest starts with.
pub const MAGIC: [u8; 4] = *b"BHMF";
/// The encoding version this crate reads and writes.
pub const VERSION: u16 = 3;

/// Capacity of every name in the manifest (domain, image, channel), in bytes.
pub const NAME_CAPACITY: usize = 16;
/// The most domains a manifest can hold.
pub const MAX_DOMAINS: usize = 8;
/// The most guests (images the launcher may start) a manifest can name.
pub const MAX_GUESTS: usize = 8;
/// The least memory a guest may ask for: the core's tables below 1 MiB and
/// one page of image.
pub const MIN_GUEST_KIB: u32 = 1028;
/// The most channels a manifest can hold.
pub const MAX_CHANNELS: usize = 8;
/// The most I/O port ranges one domain can be given.
pub const MAX_PORT_RANGES: usize = 4;
/// The most CONTROL capabilities one domain can be given.
pub const MAX_CONTROL: usize = 4;
/// The largest `memory_kib` a domain may ask for (1 GiB).
pub const MAX_MEMORY_KIB: u32 = 1 << 20;
/// The highest domain priority (0 is the lowest).
pub const MAX_PRIORITY: u8 = 7;
/// The most pages one channel may share.
pub const MAX_CHANNEL_PAGES: u8 = 16;
/// Size of a page, in bytes; channel addresses must be aligned to it.
pub const PAGE_SIZE: u64 = 4096;
/// Guest-physical addresses of channel pages must lie below this bound.
pub const GPA_LIMIT: u64 = 1 << 39;

/// A short name: a domain, image or channel name (at most 16 bytes of UTF-8).
pub type Name = heapless::String<NAME_CAPACITY>;

/// Upper bound of the length of any encoded manifest, in bytes: a buffer of
/// this size always suffices for [`encode`].
pub const MAX_ENCODED_LEN: usize = {
    const NAME: usize = 1 + NAME_CAPACITY; // varint length + bytes
    const PORT_RANGE: usize = 3 + 3; // two u16 varints
    const DOMAIN: usize = NAME // name
        + NAME // image
        + 5 // memory_kib (u32 varint)
        + 1 // priority
        + 1 + MAX_PORT_RANGES * PORT_RANGE
        + 1 + MAX_CONTROL * NAME
        + 1 // restart
        + 5 // spare_kib
        + 1 // launcher
        + 1 // free_memory
        + 1; // platform
    const GUEST: usize = 2 * NAME + 5 + 1;
    const CHANNEL: usize = 3 * NAME + 1 + 10 + 10; // names, pages, two u64 varints
    4 + 3 + 1 + MAX_DOMAINS * DOMAIN + 1 + MAX_CHANNELS * CHANNEL + 1 + MAX_GUESTS * GUEST
};

/// The whole boot manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Must be [`MAGIC`].
    pub magic: [u8; 4],
    /// Must be [`VERSION`].
    pub version: u16,
    /// The domains the core creates at boot, in creation order (at least one).
    pub domains: heapless::Vec<DomainSpec, MAX_DOMAINS>,
    /// The shared-memory channels between those domains.
    pub channels: heapless::Vec<ChannelSpec, MAX_CHANNELS>,
    /// Guests the core does not start: their images are handed, read-only,
    /// to the launcher domain, which starts them on request.
    pub guests: heapless::Vec<GuestSpec, MAX_GUESTS>,
}

impl Manifest {
    /// An empty manifest with the current [`MAGIC`] and [`VERSION`]; it does
    /// not validate until it has at least one domain.
    pub fn new() -> Self {
        Self {
            magic: MAGIC,
            version: VERSION,
            domains: heapless::Vec::new(),
            channels: heapless::Vec::new(),
            guests: heapless::Vec::new(),
        }
    }
}

impl Default for Manifest {
    fn default() -> Self {
        Self::new()
    }
}

/// One domain the core creates at boot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSpec {
    /// Unique, non-empty, only `[a-z0-9_-]`.
    pub name: Name,
    /// Name of the boot module holding the domain's ELF image (non-empty).
    pub image: Name,
    /// Guest memory in KiB: a positive multiple of 4, at most [`MAX_MEMORY_KIB`].
    pub memory_kib: u32,
    /// Scheduling priority, 0 (lowest) ..= 7 (highest).
    pub priority: u8,
    /// I/O ports the domain may access directly; no port may be given to two
    /// domains.
    pub io_ports: heapless::Vec<PortRange, MAX_PORT_RANGES>,
    /// Names of other domains this one gets a CONTROL capability on.
    pub control: heapless::Vec<Name, MAX_CONTROL>,
    /// Whether the core restarts the domain when it dies.
    pub restart: bool,
    /// Extra memory in KiB given to the domain as an unmapped region
    /// capability with every right (to create domains or channels from); 0
    /// for none. A multiple of 4, at most [`MAX_MEMORY_KIB`].
    pub spare_kib: u32,
    /// Whether this domain gets a read-only capability on every guest's
    /// image (at most one domain; required when there are guests).
    pub launcher: bool,
    /// Whether this domain gets one region capability, `free`, over all the
    /// memory left when the boot domains and channels are built: the memory
    /// broker (at most one domain).
    pub free_memory: bool,
    /// Whether this domain is the platform service: it emulates the
    /// legacy PC devices (PIC, PIT, ...) of PC guests, which the core
    /// forwards to it over an ioreq channel (at most one domain).
    pub platform: bool,
}

/// A guest the launcher may start: its image and what it asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSpec {
    /// Unique among guests and domains, non-empty, only `[a-z0-9_-]`.
    pub name: Name,
    /// Name of the boot module holding the guest's ELF image (non-empty).
    pub image: Name,
    /// Guest memory in KiB: a multiple of 4, from [`MIN_GUEST_KIB`] to
    /// [`MAX_MEMORY_KIB`].
    pub memory_kib: u32,
    /// Scheduling priority, 0 ..= 7.
    pub priority: u8,
}

/// An inclusive range of I/O ports, `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive, `>= first`).
    pub last: u16,
}

/// A shared-memory channel between two domains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSpec {
    /// Unique, non-empty, only `[a-z0-9_-]`.
    pub name: Name,
    /// Name of the first domain.
    pub a: Name,
    /// Name of the second domain (different from `a`).
    pub b: Name,
    /// Number of shared 4 KiB pages, 1 ..= 16.
    pub pages: u8,
    /// Guest-physical address of the pages in domain `a`.
    pub a_gpa: u64,
    /// Guest-physical address of the pages in domain `b`.
    pub b_gpa: u64,
}

/// Encodes `m` with postcard into `buf` and returns the encoded prefix.
///
/// Does not validate `m`. A buffer of [`MAX_ENCODED_LEN`] bytes is always
/// large enough; a smaller one may yield [`ManifestError::BufferTooSmall`].
pub fn encode<'b>(m: &Manifest, buf: &'b mut [u8]) -> Result<&'b [u8], ManifestError> {
    match postcard::to_slice(m, buf) {
        Ok(out) => Ok(out),
        Err(_) => Err(ManifestError::BufferTooSmall),
    }
}

/// Decodes and validates an encoded manifest.
///
/// The bytes are untrusted: a wrong magic or version is reported as such
/// before the body is decoded, malformed or truncated bodies yield
/// [`ManifestError::Malformed`], bytes left after the manifest yield
/// [`ManifestError::TrailingBytes`], and a well-formed manifest is returned
/// only if [`validate`] accepts it. Never panics and never allocates.
pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let found: [u8; 4] = match bytes.get(..4) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => return Err(ManifestError::Malformed),
    };
    if found != MAGIC {
        return Err(ManifestError::BadMagic { found });
    }
    let (_, version): ([u8; 4], u16) = match postcard::take_from_bytes(bytes) {
        Ok((header, _)) => header,
        Err(_) => return Err(ManifestError::Malformed),
    };
    if version != VERSION {
        return Err(ManifestError::BadVersion { found: version });
    }
    let (m, rest): (Manifest, &[u8]) = match postcard::take_from_bytes(bytes) {
        Ok(ok) => ok,
        Err(_) => return Err(ManifestError::Malformed),
    };
    if !rest.is_empty() {
        return Err(ManifestError::TrailingBytes { count: rest.len() });
    }
    validate(&m)?;
    Ok(m)
}
