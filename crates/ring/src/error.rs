//! Errors and counters.

use core::fmt;

/// What went wrong on a ring operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// Not enough free space for this frame now; nothing was written. Retry
    /// after the consumer has made room.
    Full,
    /// The message (`len` payload bytes) can never fit: the ring holds at
    /// most `max` payload bytes per frame.
    TooLarge {
        /// Payload length of the message.
        len: usize,
        /// Largest payload the ring can ever carry.
        max: usize,
    },
    /// The shared header or a frame breaks the ring's invariants: the peer
    /// misbehaved (or memory was scribbled on). The half stays in this state
    /// (every call returns the same error) until [`reset`](crate::Consumer::reset)
    /// or [`resync`](crate::Consumer::resync).
    Corrupt {
        /// Which check failed.
        what: Corruption,
    },
    /// A versioned frame carried another protocol version; the frame was
    /// consumed.
    Version {
        /// The version this side speaks.
        expected: u16,
        /// The version in the frame.
        found: u16,
    },
    /// The caller's buffer is shorter than the next frame (`needed` bytes);
    /// the frame stays in the ring.
    BufferTooSmall {
        /// Payload length of the waiting frame.
        needed: usize,
    },
    /// The frame did not decode as the requested type; it was consumed and
    /// counted in [`Stats::bad_frames`]. Only
    /// [`Consumer::pop_borrowed`](crate::Consumer::pop_borrowed) reports
    /// this; the other typed pops skip such frames silently.
    BadFrame,
    /// `postcard` refused to encode the message (not a space problem).
    Encode,
    /// The memory handed to a constructor cannot hold a ring.
    Layout {
        /// Which requirement failed.
        what: LayoutError,
    },
}

/// The invariant a [`RingError::Corrupt`] reports as broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// The header's magic word is not [`MAGIC`](crate::MAGIC).
    BadMagic {
        /// Value found.
        found: u32,
    },
    /// The header's layout version is not [`LAYOUT_VERSION`](crate::LAYOUT_VERSION).
    BadLayoutVersion {
        /// Value found.
        found: u32,
    },
    /// The header's data-area size is not a power of two in range, does not
    /// fit the memory, or changed after attach.
    BadSize {
        /// Value found.
        found: u32,
    },
    /// The producer index moved backwards, more than the data size ahead
    /// of the consumer index, or is not a multiple of
    /// [`FRAME_ALIGN`](crate::FRAME_ALIGN).
    ProducerIndex {
        /// This side's consumer index.
        consumer: u32,
        /// Producer index seen last time (validated).
        last: u32,
        /// Producer index read now.
        found: u32,
    },
    /// The consumer index moved backwards, past the producer index, or is
    /// not a multiple of [`FRAME_ALIGN`](crate::FRAME_ALIGN).
    ConsumerIndex {
        /// This side's producer index.
        producer: u32,
        /// Consumer index seen last time (validated).
        last: u32,
        /// Consumer index read now.
        found: u32,
    },
    /// A length prefix points past what was published.
    BadLength {
        /// The length prefix.
        len: u32,
        /// Payload bytes published after the prefix.
        available: u32,
    },
}

/// Why memory handed to a constructor cannot hold a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The start is not aligned to [`ALIGN`](crate::ALIGN).
    Misaligned,
    /// Shorter than [`HEADER_LEN`](crate::HEADER_LEN) +
    /// [`MIN_DATA_SIZE`](crate::MIN_DATA_SIZE).
    TooSmall,
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("ring full"),
            Self::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes exceeds the ring's {max}-byte limit"
                )
            }
            Self::Corrupt { what } => write!(f, "ring corrupt: {what:?}"),
            Self::Version { expected, found } => {
                write!(f, "protocol version {found}, expected {expected}")
            }
            Self::BufferTooSmall { needed } => {
                write!(f, "buffer too small: frame has {needed} bytes")
            }
            Self::BadFrame => f.write_str("frame failed to decode (skipped)"),
            Self::Encode => f.write_str("message failed to encode"),
            Self::Layout { what } => write!(f, "memory cannot hold a ring: {what:?}"),
        }
    }
}

impl core::error::Error for RingError {}

impl From<Corruption> for RingError {
    fn from(what: Corruption) -> Self {
        Self::Corrupt { what }
    }
}

/// Counters one half keeps in its own (private) memory; the peer cannot
/// touch them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames pushed (producer) or consumed (consumer), bad ones included.
    pub frames: u64,
    /// Payload bytes of those frames.
    pub bytes: u64,
    /// Frames that failed to decode and were skipped (consumer).
    pub bad_frames: u64,
    /// Versioned frames refused with [`RingError::Version`] (consumer).
    pub version_errors: u64,
    /// Pushes refused with [`RingError::Full`] (producer).
    pub full: u64,
    /// Times corruption was detected (the half then stays faulted).
    pub corrupt: u64,
}
