//! Errors of decoding and validating a manifest.

use core::fmt;

use crate::{
    Name, GPA_LIMIT, MAGIC, MAX_CHANNEL_PAGES, MAX_MEMORY_KIB, MAX_PRIORITY, MIN_GUEST_KIB, VERSION,
};

/// Why a manifest could not be encoded, decoded or accepted.
///
/// Problems with one domain or channel name the entry by its index and name;
/// `Display` reads like `domain 2 ("pong"): memory_kib 0 is not a positive
/// multiple of 4`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// The output buffer given to [`encode`](crate::encode) is too small.
    BufferTooSmall,
    /// The encoded bytes are truncated or not a postcard-encoded manifest.
    Malformed,
    /// Bytes are left over after the encoded manifest.
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
    /// The manifest does not start with [`MAGIC`].
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// The manifest's version is not [`VERSION`].
    BadVersion {
        /// The version found instead.
        found: u16,
    },
    /// The manifest has no domains.
    NoDomains,
    /// A domain entry is invalid.
    Domain {
        /// Index of the domain in [`Manifest::domains`](crate::Manifest::domains).
        index: usize,
        /// The domain's name, as given.
        name: Name,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A channel entry is invalid.
    Channel {
        /// Index of the channel in [`Manifest::channels`](crate::Manifest::channels).
        index: usize,
        /// The channel's name, as given.
        name: Name,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A guest entry is invalid.
    Guest {
        /// Index of the guest in [`Manifest::guests`](crate::Manifest::guests).
        index: usize,
        /// The guest's name, as given.
        name: Name,
        /// What is wrong with it.
        problem: Problem,
    },
    /// Two domains set a flag only one may have (`launcher`, `free_memory`,
    /// `platform`).
    TwoDomainsFlagged {
        /// The flag's key.
        key: &'static str,
        /// Index of the first domain with it.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// Guests are listed but no domain is the launcher.
    GuestsWithoutLauncher,
}

/// One end of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Domain `a`, mapped at `a_gpa`.
    A,
    /// Domain `b`, mapped at `b_gpa`.
    B,
}

impl End {
    /// The key naming this end's domain: `"a"` or `"b"`.
    pub fn key(self) -> &'static str {
        match self {
            End::A => "a",
            End::B => "b",
        }
    }

    /// The key naming this end's address: `"a_gpa"` or `"b_gpa"`.
    pub fn gpa_key(self) -> &'static str {
        match self {
            End::A => "a_gpa",
            End::B => "b_gpa",
        }
    }
}

/// What is wrong with one domain or channel entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The name is empty.
    NameEmpty,
    /// The name contains a character outside `[a-z0-9_-]`.
    NameInvalid {
        /// The first offending character.
        found: char,
    },
    /// An earlier entry of the same kind has the same name.
    NameDuplicate {
        /// Index of the earlier entry.
        first: usize,
    },
    /// The domain's image name is empty.
    ImageEmpty,
    /// A guest has the name of a domain.
    NameIsADomain {
        /// Index of the domain.
        domain: usize,
    },
    /// A guest's `memory_kib` is below [`MIN_GUEST_KIB`] or not a multiple of 4.
    GuestMemory {
        /// The value given.
        kib: u32,
    },
    /// `memory_kib` is zero or not a multiple of 4.
    MemoryNotMultipleOf4 {
        /// The value given.
        kib: u32,
    },
    /// `memory_kib` is above [`MAX_MEMORY_KIB`].
    MemoryTooLarge {
        /// The value given.
        kib: u32,
    },
    /// `spare_kib` is not a multiple of 4 or is above [`MAX_MEMORY_KIB`].
    SpareMemory {
        /// The value given.
        kib: u32,
    },
    /// `priority` is above [`MAX_PRIORITY`].
    PriorityTooHigh {
        /// The value given.
        priority: u8,
    },
    /// A port range has `first > last`.
    PortRangeReversed {
        /// Index of the range in `io_ports`.
        index: usize,
        /// The range's first port.
        first: u16,
        /// The range's last port.
        last: u16,
    },
    /// A port of a range is also given to an earlier domain.
    PortShared {
        /// Index of the range in `io_ports`.
        index: usize,
        /// The lowest port given to both.
        port: u16,
        /// Index of the earlier domain that has it.
        other: usize,
    },
    /// A `control` entry names the domain itself.
    ControlSelf {
        /// Index of the entry in `control`.
        index: usize,
    },
    /// A `control` entry names no domain of the manifest.
    ControlUnknown {
        /// Index of the entry in `control`.
        index: usize,
        /// The name given.
        name: Name,
    },
    /// A `control` entry repeats an earlier one.
    ControlDuplicate {
        /// Index of the entry in `control`.
        index: usize,
        /// The name given.
        name: Name,
    },
    /// A channel end names no domain of the manifest.
    EndUnknown {
        /// Which end.
        end: End,
        /// The name given.
        name: Name,
    },
    /// Both ends of a channel are the same domain.
    EndsSame,
    /// `pages` is not in `1..=16`.
    PagesOutOfRange {
        /// The value given.
        pages: u8,
    },
    /// A channel address is zero.
    GpaZero {
        /// Which end.
        end: End,
    },
    /// A channel address is not page-aligned.
    GpaUnaligned {
        /// Which end.
        end: End,
        /// The address given.
        gpa: u64,
    },
    /// A channel's pages overflow or reach past [`GPA_LIMIT`].
    GpaOutOfRange {
        /// Which end.
        end: End,
        /// The address given.
        gpa: u64,
        /// The channel's page count.
        pages: u8,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, "entry")
    }
}

impl Problem {
    /// Writes the problem; `kind` ("domain", "channel") names earlier entries.
    fn write(&self, f: &mut fmt::Formatter<'_>, kind: &str) -> fmt::Result {
        match self {
            Problem::NameEmpty => write!(f, "name is empty"),
            Problem::NameInvalid { found } => write!(
                f,
                "name contains {found:?}; only a-z, 0-9, '_' and '-' are allowed"
            ),
            Problem::NameDuplicate { first } => {
                write!(f, "name is already used by {kind} {first}")
            }
            Problem::ImageEmpty => write!(f, "image is empty"),
            Problem::NameIsADomain { domain } => {
                write!(f, "name is already used by domain {domain}")
            }
            Problem::GuestMemory { kib } => write!(
                f,
                "memory_kib {kib} is not a multiple of 4 of at least {MIN_GUEST_KIB}"
            ),
            Problem::MemoryNotMultipleOf4 { kib } => {
                write!(f, "memory_kib {kib} is not a positive multiple of 4")
            }
            Problem::MemoryTooLarge { kib } => {
                write!(f, "memory_kib {kib} is above {MAX_MEMORY_KIB} (1 GiB)")
            }
            Problem::SpareMemory { kib } => write!(
                f,
                "spare_kib {kib} is not a multiple of 4 at most {MAX_MEMORY_KIB} (1 GiB)"
            ),
            Problem::PriorityTooHigh { priority } => {
                write!(f, "priority {priority} is above {MAX_PRIORITY}")
            }
            Problem::PortRangeReversed { index, first, last } => write!(
                f,
                "io_ports[{index}] {first:#x}-{last:#x} has first above last"
            ),
            Problem::PortShared { index, port, other } => write!(
                f,
                "io_ports[{index}]: port {port:#x} is also given to domain {other}"
            ),
            Problem::ControlSelf { index } => {
                write!(f, "control[{index}] names the domain itself")
            }
            Problem::ControlUnknown { index, name } => write!(
                f,
                "control[{index}] {:?} is not a domain of the manifest",
                name.as_str()
            ),
            Problem::ControlDuplicate { index, name } => write!(
                f,
                "control[{index}] {:?} is listed more than once",
                name.as_str()
            ),
            Problem::EndUnknown { end, name } => write!(
                f,
                "{} {:?} is not a domain of the manifest",
                end.key(),
                name.as_str()
            ),
            Problem::EndsSame => write!(f, "a and b are the same domain"),
            Problem::PagesOutOfRange { pages } => {
                write!(f, "pages {pages} is not in 1..={MAX_CHANNEL_PAGES}")
            }
            Problem::GpaZero { end } => write!(f, "{} is zero", end.gpa_key()),
            Problem::GpaUnaligned { end, gpa } => {
                write!(f, "{} {gpa:#x} is not 4096-aligned", end.gpa_key())
            }
            Problem::GpaOutOfRange { end, gpa, pages } => write!(
                f,
                "{} {gpa:#x} + {pages} pages reaches past {GPA_LIMIT:#x}",
                end.gpa_key()
            ),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::BufferTooSmall => {
                write!(f, "buffer too small for the encoded manifest")
            }
            ManifestError::Malformed => write!(f, "encoded manifest is malformed or truncated"),
            ManifestError::TrailingBytes { count } => {
                write!(f, "{count} bytes left after the encoded manifest")
            }
            ManifestError::BadMagic { found } => {
                write!(f, "magic {found:02x?} is not {MAGIC:02x?} (\"BHMF\")")
            }
            ManifestError::BadVersion { found } => {
                write!(f, "version {found} is not supported (expected {VERSION})")
            }
            ManifestError::NoDomains => write!(f, "manifest has no domains"),
            ManifestError::Domain {
                index,
                name,
                problem,
            } => {
                write!(f, "domain {index} ({:?}): ", name.as_str())?;
                problem.write(f, "domain")
            }
            ManifestError::Channel {
                index,
                name,
                problem,
            } => {
                write!(f, "channel {index} ({:?}): ", name.as_str())?;
                problem.write(f, "channel")
            }
            ManifestError::Guest {
                index,
                name,
                problem,
            } => {
                write!(f, "guest {index} ({:?}): ", name.as_str())?;
                problem.write(f, "guest")
            }
            ManifestError::TwoDomainsFlagged { key, first, second } => write!(
                f,
                "domains {first} and {second} both set {key}; at most one domain may"
            ),
            ManifestError::GuestsWithoutLauncher => write!(
                f,
                "guests are listed but no domain has launcher = true to start them"
            ),
        }
    }
}

impl core::error::Error for ManifestError {}
