//! `hypercall-abi` is the contract between a domain and Bulkhead's VM-exit
//! core: the hypercall numbers, the register convention, the status codes and
//! the CPUID signature a guest uses to detect that it runs on Bulkhead.
//!
//! It owns only numbers and their meaning, so both sides (the core and every
//! guest runtime) link the same definitions. It must never contain code that
//! executes a hypercall or trusts a value it decodes: [`Status::from_raw`] and
//! [`Call::from_raw`] return `None` for numbers they do not know.
//!
//! # Register convention
//!
//! A domain issues `VMCALL` with:
//!
//! | register | meaning                                   |
//! |----------|-------------------------------------------|
//! | RAX      | call number ([`Call`])                    |
//! | RDI      | argument 0                                |
//! | RSI      | argument 1                                |
//! | RDX      | argument 2                                |
//! | R10      | argument 3                                |
//! | R8       | argument 4                                |
//! | R9       | argument 5                                |
//!
//! On return RAX holds a [`Status`] (0 = success) and RDX holds a result
//! value where the call defines one. Every other register is preserved.
//! RCX and R11 are not used so that the convention stays compatible with a
//! `syscall`-style stub.
#![no_std]
#![forbid(unsafe_code)]

/// The CPUID leaf at which the core reports its signature.
pub const CPUID_SIGNATURE_LEAF: u32 = 0x4000_0000;

/// The 12-byte vendor signature returned in EBX, ECX, EDX (in that order) for
/// [`CPUID_SIGNATURE_LEAF`].
pub const SIGNATURE: [u8; 12] = *b"BulkheadCore";

/// The highest hypervisor CPUID leaf the core answers, returned in EAX for
/// [`CPUID_SIGNATURE_LEAF`].
pub const CPUID_MAX_LEAF: u32 = CPUID_SIGNATURE_LEAF;

/// The signature split into the three registers, as a guest reads them.
pub const fn signature_registers() -> (u32, u32, u32) {
    let s = SIGNATURE;
    (
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
    )
}

/// Longest message, in bytes, that [`Call::LogWrite`] accepts in one call.
pub const LOG_WRITE_MAX: u64 = 256;

/// Hypercall numbers (RAX on entry).
///
/// Capabilities are named by slot number in the caller's capability space;
/// [`SLOT_SELF`] names the caller's own domain where a call takes a domain.
/// Every call checks the slot's object type and rights before anything
/// else, in this order: slot in range ([`Status::InvalidSlot`]), slot holds
/// a capability ([`Status::EmptySlot`]), the object still exists
/// ([`Status::StaleCapability`]), the type fits ([`Status::WrongType`]),
/// the rights suffice ([`Status::InsufficientRights`]).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Does nothing and returns [`Status::Ok`]. Used to measure the cost of
    /// a round trip through the core.
    Null = 0,
    /// Prints a message on the core's console, prefixed with the domain's
    /// name. RDI = guest-physical address of the bytes, RSI = length
    /// (at most [`LOG_WRITE_MAX`]). Errors: [`Status::InvalidArgument`] when
    /// the length is too long, [`Status::InvalidAddress`] when any byte is
    /// outside the domain's readable memory.
    LogWrite = 1,
    /// Stops the calling domain. RDI = an exit code the core reports. Does
    /// not return.
    Exit = 2,
    /// Gives up the rest of the time slice. Always [`Status::Ok`].
    Yield = 3,
    /// Describes a capability. RDI = slot. Returns RDX = object type
    /// ([`ObjectType`]) | rights << 8 | object index << 32.
    CapInspect = 4,
    /// Copies a capability into a free slot with fewer (or equal) rights.
    /// RDI = source slot, RSI = rights of the copy (must be a subset of the
    /// source's: else [`Status::InsufficientRights`]). Returns RDX = new slot
    /// ([`Status::OutOfResources`] when the space is full).
    CapDerive = 5,
    /// Empties a slot. RDI = slot.
    CapDelete = 6,
    /// Sends a copy of a capability to the peer of a channel. RDI = channel
    /// slot (needs [`Rights::GRANT`]), RSI = slot of the capability to send
    /// (needs [`Rights::GRANT`]), RDX = rights of the copy (a subset).
    /// Returns RDX = the slot it arrived in, in the peer's space; tell the
    /// peer through the channel.
    CapGrant = 7,
    /// Splits a memory region in two. RDI = region slot (needs
    /// [`Rights::CONTROL`]), RSI = byte offset (page-aligned, strictly
    /// inside: else [`Status::InvalidArgument`]). The original keeps the
    /// first part; returns RDX = slot of the second part. A region mapped
    /// anywhere cannot be split ([`Status::Denied`]).
    MemSplit = 8,
    /// Maps a memory region into a domain. RDI = domain slot (or
    /// [`SLOT_SELF`]; needs [`Rights::CONTROL`] unless self), RSI = region
    /// slot (needs [`Rights::MAP`] and every right asked for), RDX =
    /// guest-physical address (page-aligned), R10 = rights
    /// (READ/WRITE/EXECUTE). Errors: [`Status::InvalidAddress`] for an
    /// unaligned, overflowing or already-mapped range.
    MemMap = 9,
    /// Stops a domain. RDI = domain slot (needs [`Rights::CONTROL`]).
    DomainStop = 10,
    /// Destroys a domain: every capability naming it becomes stale. RDI =
    /// domain slot (needs [`Rights::CONTROL`]).
    DomainDestroy = 11,
    /// Reports a domain's state. RDI = domain slot (needs [`Rights::READ`])
    /// or [`SLOT_SELF`]. Returns RDX = [`DomainState`] (bits 0–7) | priority
    /// << 8 | its own memory in KiB << 16 | 1 << 63 when it was stopped by
    /// a fault or a violation (not by a supervisor, not by exiting).
    DomainStatus = 12,
    /// Wakes the peer of a channel. RDI = channel slot (needs
    /// [`Rights::WRITE`]). [`Status::Denied`] when the peer was stopped or
    /// destroyed.
    ChannelNotify = 13,
    /// Waits until a channel is notified (a notification sent while nobody
    /// waited is kept and consumed by the next wait). RDI = channel slot
    /// (needs [`Rights::READ`]), RSI = timeout in TSC ticks (0 = poll,
    /// `u64::MAX` = forever). Returns [`Status::Ok`], or
    /// [`Status::TimedOut`]; [`Status::Denied`] when the peer stopped while
    /// the caller waited.
    ChannelWait = 14,
    /// Waits the given number of TSC ticks without a channel. RDI = ticks.
    Sleep = 15,
    /// Creates a domain whose memory is a region the caller holds. RDI =
    /// region slot (needs [`Rights::CONTROL`] and [`Rights::MAP`]; the region
    /// is mapped as the new domain's memory at guest-physical 0 and stays
    /// the holder's: destroying the domain unmaps it, it is not freed;
    /// [`Status::Denied`] while it is another live domain's memory), RSI =
    /// priority (at most the caller's: else [`Status::Denied`]), RDX =
    /// capability-slot budget of the new domain (1..=32: else
    /// [`Status::InvalidArgument`]), R10 = [`SLOT_NONE`] or the slot of a
    /// guest image the core handed out at boot (needs [`Rights::READ`]):
    /// the new domain takes that guest's name. Returns RDX = slot of a
    /// capability with CONTROL, READ and GRANT on it. The domain does not
    /// run before [`Call::DomainStart`]. [`Status::OutOfResources`] when the
    /// domain table or the core pool is full.
    DomainCreate = 16,
    /// Sets the initial vCPU state of a created, not yet started domain.
    /// RDI = domain slot (needs [`Rights::CONTROL`]), RSI = entry point, RDX
    /// = stack pointer, R10 = value passed in RDI and in RSI (the start
    /// info of a Rust domain, the zero page of a Linux kernel's 64-bit
    /// entry; CS is 0x10 and the data segments 0x18, as that entry wants). The entry must lie in
    /// the domain's memory at or above [`IMAGE_FLOOR`] (else
    /// [`Status::InvalidAddress`]); [`Status::Denied`] once started.
    DomainSetVcpu = 17,
    /// Gives a domain direct access to an I/O port range. RDI = domain slot
    /// (needs [`Rights::CONTROL`]), RSI = IoPorts slot (needs
    /// [`Rights::GRANT`]). The ports pass through its I/O bitmap and a copy
    /// of the capability lands in its space.
    DomainBindPorts = 18,
    /// Starts a created domain whose vCPU state was set. RDI = domain slot
    /// (needs [`Rights::CONTROL`]). [`Status::Denied`] if it was started
    /// before or has no vCPU state.
    DomainStart = 19,
    /// Creates a channel between two domains over a region's pages. RDI and
    /// RSI = the two domains (each [`SLOT_SELF`] or a slot with
    /// [`Rights::CONTROL`]; they must differ: else
    /// [`Status::InvalidArgument`]), RDX = region slot (needs MAP, READ and
    /// WRITE), R10 = guest-physical address (page-aligned) where the pages
    /// are mapped, read/write, in both domains. Each end gets a capability
    /// with READ, WRITE and GRANT. Returns RDX = the first domain's slot |
    /// the second domain's slot << 16.
    ChannelCreate = 20,
    /// UART service only (the domain holding COM1's ports): first does
    /// what [`Call::IoReqDone`] does (completes the reads answered on the
    /// response ring, and the one in RSI), then waits until the core has
    /// queued port-I/O requests on the ioreq ring (see [`ioreq`]), or RDI
    /// TSC ticks have passed (0: no limit). A service that answers and then
    /// waits needs this one call. [`Status::Denied`] for any other domain.
    IoReqWait = 21,
    /// UART service only: tells the core that answers are on the ioreq
    /// response ring; the core completes the waiting guests' `IN`s. RSI =
    /// one more answer carried in the register
    /// ([`ioreq::Response::to_word`]; 0 = none), completed after those on
    /// the ring.
    IoReqDone = 22,
    /// Stops every domain and ends the system (the core then shuts the
    /// machine down). Allowed only to a domain that holds a CONTROL
    /// capability on every other live domain (else [`Status::Denied`]).
    Shutdown = 23,
    /// Counts a domain's VM exits. RDI = domain slot (needs
    /// [`Rights::READ`]) or [`SLOT_SELF`]. RSI = 0: returns RDX =
    /// hypercalls | port I/O << 16 | EPT violations << 32 | all exits <<
    /// 48, each field saturating at 0xffff (one consistent snapshot).
    /// RSI = 1 + k: RDX = count k in full (k: 0 hypercalls, 1 port I/O,
    /// 2 EPT violations, 3 all exits). RSI > 4: [`Status::InvalidArgument`].
    DomainExits = 24,
    /// Unmaps a memory region from a domain. RDI = domain slot (or
    /// [`SLOT_SELF`]; needs [`Rights::CONTROL`] unless self), RSI = region
    /// slot (needs [`Rights::MAP`]). Every mapping of the region in that
    /// domain goes, and cached translations are dropped.
    /// [`Status::InvalidArgument`] when it is not mapped there;
    /// [`Status::Denied`] when it is that domain's own memory.
    MemUnmap = 25,
    /// Zeroes part of a memory region. RDI = region slot (needs
    /// [`Rights::WRITE`]), RSI = byte offset, RDX = length (both
    /// page-aligned, length 1..=[`MEM_ZERO_MAX`] bytes, inside the region:
    /// else [`Status::InvalidArgument`]). [`Status::Denied`] while the region
    /// is mapped into any domain.
    MemZero = 26,
    /// Reads one item of another domain's vCPU state. RDI = domain slot
    /// (needs [`Rights::READ`]; the caller itself is [`Status::Denied`]), RSI = item: `0..`[`peek::REGISTERS`]`.len()`
    /// for a register (in the order of [`peek::REGISTERS`]),
    /// [`peek::EXITS`] + n for the count of VM exits with basic reason n
    /// (n below [`peek::EXIT_REASONS`]), or [`peek::LOG`] (+ 1 + k) for its
    /// recent log; else [`Status::InvalidArgument`].
    /// Returns RDX = the value. [`Status::Denied`] for a domain that has
    /// not run yet. Works on a stopped domain (its last state).
    DomainPeek = 27,
    /// Restarts a stopped domain the manifest marks `restart`. RDI =
    /// domain slot (needs [`Rights::CONTROL`]; not the caller). Its memory
    /// is zeroed and loaded afresh from its boot image, its start-info page
    /// and its boot mappings (memory, channels) are rebuilt, its
    /// capabilities are kept, and it starts again at its entry point.
    /// [`Status::Denied`] when it is not stopped or not restartable.
    DomainRestart = 28,
    /// Drains the caller's log ring: a [`LOG_RING_BYTES`]-byte `shm-ring`
    /// ring at RDI (guest-physical, page-aligned, mapped readable and
    /// writable) whose frames are encoded log records (at most
    /// [`LOG_FRAME_MAX`] bytes each; `rt` writes `defmt` frames). The core
    /// prints each frame as one console line `defmt:NAME:HEX` (lowercase
    /// hex; the host decodes it with the domain's ELF), moves the ring's
    /// consumer index past it, and remembers the address so that frames
    /// still in the ring when the domain stops (exit, fault) are printed
    /// too. A longer frame is skipped and reported on the console. Returns
    /// RDX = frames printed. Errors: [`Status::InvalidAddress`] for an
    /// unaligned address or a page not mapped readable and writable,
    /// [`Status::InvalidArgument`] for a ring whose header or indices are
    /// corrupt (the core forgets it; the domain may format a fresh one).
    LogFlush = 29,
    /// Joins two memory regions, the inverse of [`Call::MemSplit`]. RDI =
    /// region slot (needs [`Rights::CONTROL`]), RSI = slot of the region
    /// that starts where the first ends (needs [`Rights::CONTROL`]). The
    /// first grows to cover both; the second is destroyed (every
    /// capability naming it becomes stale; the caller's slot is emptied).
    /// [`Status::InvalidArgument`] when they are the same region or not
    /// adjacent in that order; [`Status::Denied`] when either is mapped
    /// anywhere, is a domain's memory or a guest image, they belong to
    /// different domains, or any other capability names the first (its
    /// holder would gain the second's memory).
    MemMerge = 30,
    /// Sets the platform a created, not yet started domain runs on. RDI =
    /// domain slot (needs [`Rights::CONTROL`]), RSI = [`PLATFORM_BULKHEAD`]
    /// (the default: a port without a binding stops it, `HLT` stops it)
    /// or [`PLATFORM_PC`] (an unmodified operating system: such a port reads
    /// as absent, all ones, and writes to it are ignored; `HLT` with
    /// interrupts enabled waits for an interrupt, with them disabled stops
    /// it). [`Status::InvalidArgument`] for another RSI, [`Status::Denied`]
    /// once started.
    DomainSetPlatform = 31,
    /// Platform service only (the domain the manifest marks `platform`):
    /// queues external interrupt vector RSI (0x20–0xFF) for the PC guest in
    /// domain-table slot RDI (the `guest` of its ioreq requests); the core
    /// injects it when the guest can take it and wakes it if it waits in
    /// `HLT`. [`Status::Denied`] for any other caller,
    /// [`Status::InvalidArgument`] for a vector below 0x20 or a slot that
    /// holds no PC guest, [`Status::OutOfResources`] when 16 vectors wait
    /// for it already.
    IrqRaise = 32,
    /// A device service (the UART service) drives interrupt line RSI
    /// (0–15) of the domain in table slot RDI to level RDX (0 low, 1
    /// high): for a PC guest the core passes it to the platform service's
    /// PIC; a domain without one has no lines, and the call does nothing.
    /// [`Status::Denied`] for a caller that serves no device,
    /// [`Status::InvalidArgument`] for a line above 15 or a level above 1,
    /// [`Status::OutOfResources`] while the platform's ring is full.
    IrqLine = 33,
    /// Reports the length of a memory region. RDI = region slot (any
    /// rights). Returns RDX = its length in bytes. The object index
    /// [`Call::CapInspect`] reports survives [`Call::MemSplit`] and
    /// [`Call::MemMerge`], so it does not tell a region's length: the
    /// memory broker checks a returned region with this.
    MemSize = 34,
}

/// [`Call::DomainSetPlatform`]: a Bulkhead domain.
pub const PLATFORM_BULKHEAD: u64 = 0;
/// [`Call::DomainSetPlatform`]: a PC guest (an unmodified Linux).
pub const PLATFORM_PC: u64 = 1;

/// Bytes of a log ring drained by [`Call::LogFlush`] (one page).
pub const LOG_RING_BYTES: u64 = 4096;

/// Longest log frame, in bytes, that [`Call::LogFlush`] prints.
pub const LOG_FRAME_MAX: usize = 128;

/// What starts the console token of a frame [`Call::LogFlush`] printed:
/// `defmt:NAME:HEX` (the host finds and decodes these).
pub const LOG_FRAME_TOKEN: &str = "defmt:";

/// Items of [`Call::DomainPeek`].
pub mod peek {
    /// The registers, by item number.
    pub const REGISTERS: [&str; 21] = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip", "rflags", "cr0", "cr3", "cr4",
    ];
    /// The first exit-count item: `EXITS + n` is the count for basic exit
    /// reason n.
    pub const EXITS: u64 = 0x100;
    /// Basic exit reasons counted one by one (higher ones are not
    /// reported).
    pub const EXIT_REASONS: u64 = 80;
    /// The length in bytes of the domain's recent log (its last
    /// `LOG_WRITE` lines, oldest first, each ended by `\n`); `LOG + 1 + k`
    /// is bytes `8k..8k + 8` of it, little-endian, zero past the end.
    pub const LOG: u64 = 0x200;
    /// How many bytes of recent log the core keeps per domain.
    pub const LOG_BYTES: u64 = 256;
}

impl Call {
    /// Decodes a call number; `None` for numbers the ABI does not define.
    pub const fn from_raw(raw: u64) -> Option<Call> {
        Some(match raw {
            0 => Call::Null,
            1 => Call::LogWrite,
            2 => Call::Exit,
            3 => Call::Yield,
            4 => Call::CapInspect,
            5 => Call::CapDerive,
            6 => Call::CapDelete,
            7 => Call::CapGrant,
            8 => Call::MemSplit,
            9 => Call::MemMap,
            10 => Call::DomainStop,
            11 => Call::DomainDestroy,
            12 => Call::DomainStatus,
            13 => Call::ChannelNotify,
            14 => Call::ChannelWait,
            15 => Call::Sleep,
            16 => Call::DomainCreate,
            17 => Call::DomainSetVcpu,
            18 => Call::DomainBindPorts,
            19 => Call::DomainStart,
            20 => Call::ChannelCreate,
            21 => Call::IoReqWait,
            22 => Call::IoReqDone,
            23 => Call::Shutdown,
            24 => Call::DomainExits,
            25 => Call::MemUnmap,
            26 => Call::MemZero,
            27 => Call::DomainPeek,
            28 => Call::DomainRestart,
            29 => Call::LogFlush,
            30 => Call::MemMerge,
            31 => Call::DomainSetPlatform,
            32 => Call::IrqRaise,
            33 => Call::IrqLine,
            34 => Call::MemSize,
            _ => return None,
        })
    }

    /// Every call, in number order.
    pub const ALL: [Call; 35] = [
        Call::Null,
        Call::LogWrite,
        Call::Exit,
        Call::Yield,
        Call::CapInspect,
        Call::CapDerive,
        Call::CapDelete,
        Call::CapGrant,
        Call::MemSplit,
        Call::MemMap,
        Call::DomainStop,
        Call::DomainDestroy,
        Call::DomainStatus,
        Call::ChannelNotify,
        Call::ChannelWait,
        Call::Sleep,
        Call::DomainCreate,
        Call::DomainSetVcpu,
        Call::DomainBindPorts,
        Call::DomainStart,
        Call::ChannelCreate,
        Call::IoReqWait,
        Call::IoReqDone,
        Call::Shutdown,
        Call::DomainExits,
        Call::MemUnmap,
        Call::MemZero,
        Call::DomainPeek,
        Call::DomainRestart,
        Call::LogFlush,
        Call::MemMerge,
        Call::DomainSetPlatform,
        Call::IrqRaise,
        Call::IrqLine,
        Call::MemSize,
    ];

    /// A short name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Call::Null => "null",
            Call::LogWrite => "log_write",
            Call::Exit => "exit",
            Call::Yield => "yield",
            Call::CapInspect => "cap_inspect",
            Call::CapDerive => "cap_derive",
            Call::CapDelete => "cap_delete",
            Call::CapGrant => "cap_grant",
            Call::MemSplit => "mem_split",
            Call::MemMap => "mem_map",
            Call::DomainStop => "domain_stop",
            Call::DomainDestroy => "domain_destroy",
            Call::DomainStatus => "domain_status",
            Call::ChannelNotify => "channel_notify",
            Call::ChannelWait => "channel_wait",
            Call::Sleep => "sleep",
            Call::DomainCreate => "domain_create",
            Call::DomainSetVcpu => "domain_set_vcpu",
            Call::DomainBindPorts => "domain_bind_ports",
            Call::DomainStart => "domain_start",
            Call::ChannelCreate => "channel_create",
            Call::IoReqWait => "ioreq_wait",
            Call::IoReqDone => "ioreq_done",
            Call::Shutdown => "shutdown",
            Call::DomainExits => "domain_exits",
            Call::MemUnmap => "mem_unmap",
            Call::MemZero => "mem_zero",
            Call::DomainPeek => "domain_peek",
            Call::DomainRestart => "domain_restart",
            Call::LogFlush => "log_flush",
            Call::MemMerge => "mem_merge",
            Call::DomainSetPlatform => "domain_set_platform",
            Call::IrqRaise => "irq_raise",
            Call::IrqLine => "irq_line",
            Call::MemSize => "mem_size",
        }
    }
}

/// The slot number that names the calling domain itself.
pub const SLOT_SELF: u64 = u64::MAX;

/// The slot number that names no capability, where a call takes an
/// optional one.
pub const SLOT_NONE: u64 = u64::MAX - 1;

/// The most bytes one [`Call::MemZero`] clears (bounding the time the core
/// spends in one call).
pub const MEM_ZERO_MAX: u64 = 4 << 20;

bitflags::bitflags! {
    /// What a capability allows on its object.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Rights: u8 {
        /// Read: memory reads; channel wait; domain status.
        const READ = 1 << 0;
        /// Write: memory writes; channel notify.
        const WRITE = 1 << 1;
        /// Execute: memory fetches.
        const EXECUTE = 1 << 2;
        /// Map: the region may be mapped into a domain.
        const MAP = 1 << 3;
        /// Grant: the capability may be sent over a channel (on the
        /// capability), or capabilities may be sent through it (on a
        /// channel).
        const GRANT = 1 << 4;
        /// Control: split a region; stop, destroy or map into a domain.
        const CONTROL = 1 << 5;
    }
}

/// Kinds of core objects a capability can name.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// A domain (and its vCPU).
    Domain = 1,
    /// A range of host-physical memory.
    MemRegion = 2,
    /// Shared pages between two domains plus a notification.
    Channel = 3,
    /// A range of I/O ports.
    IoPorts = 4,
}

impl ObjectType {
    /// Decodes a type number.
    pub const fn from_raw(raw: u64) -> Option<ObjectType> {
        Some(match raw {
            1 => ObjectType::Domain,
            2 => ObjectType::MemRegion,
            3 => ObjectType::Channel,
            4 => ObjectType::IoPorts,
            _ => return None,
        })
    }
}

/// A domain's state, as [`Call::DomainStatus`] reports it.
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    /// Runnable or running.
    Running = 1,
    /// Waiting for a notification or a timeout.
    Blocked = 2,
    /// Stopped (by a fault, by itself or by its controller).
    Stopped = 3,
}

pub mod ioreq {
    //! The port-I/O forwarding protocol between the core and the UART
    //! service: when a domain touches the virtual UART's ports, the core
    //! queues a [`Request`] on the request ring of the ioreq channel (two
    //! rings over [`PAGES`] pages the core shares with the service at
    //! [`GPA`]); the service answers reads with a [`Response`] on the
    //! response ring. Messages travel in the ring's versioned envelope with
    //! [`VERSION`].
    use serde::{Deserialize, Serialize};

    /// Protocol version carried by every message.
    pub const VERSION: u16 = 6;
    /// Most writes the core posts for one domain before it hands them to
    /// the service (a 16550 transmit FIFO's worth).
    pub const POSTED_MAX: usize = 16;
    /// Slots of the core's domain table, which requests name guests by: a
    /// device service keeps one device model per slot.
    pub const GUESTS: usize = 8;
    /// Where the ioreq channel's pages are mapped in the UART service.
    pub const GPA: u64 = 0x3f00_0000;
    /// Size of the ioreq channel in pages.
    pub const PAGES: u64 = 2;
    /// Where the UART service's state pages follow the channel: memory the
    /// core shares with the service alone and keeps across a restart of
    /// the service (which keeps its unprinted console output there).
    pub const STATE_GPA: u64 = GPA + PAGES * 4096;
    /// Size of the state pages.
    pub const STATE_PAGES: u64 = 17;
    /// Where the core's console ring follows the state pages, in the UART
    /// service only: an `shm-ring` ring (the core produces, the service
    /// consumes) of the core's console lines, one frame each (text, no
    /// newline, at most [`LOG_LINE_MAX`] bytes). While the service takes
    /// them the core never waits for the serial port; before it runs and
    /// after it stops the core prints directly.
    pub const LOG_GPA: u64 = STATE_GPA + STATE_PAGES * 4096;
    /// Size of the console ring in pages.
    pub const LOG_PAGES: u64 = 4;
    /// Longest console line the core puts on the ring.
    pub const LOG_LINE_MAX: usize = 400;
    /// The virtual UART's first port (COM1).
    pub const PORT_BASE: u16 = 0x3f8;
    /// The legacy PC ports the platform service emulates for PC guests;
    /// on its ioreq channel a request's register `offset` is an index
    /// into this table. The master and slave 8259A PIC (0x20, 0x21, 0xA0,
    /// 0xA1), the 8254 PIT (0x40-0x43) and port 0x61, the CMOS RTC (0x70,
    /// 0x71), the i8042 keyboard controller (0x60, 0x64) and the ELCR
    /// (0x4D0, 0x4D1). Other ports a PC guest touches are absent.
    pub const PC_PORTS: [u16; 15] = [
        0x20, 0x21, 0xa0, 0xa1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x60, 0x64, 0x4d0, 0x4d1,
    ];
    /// Ports in the virtual UART.
    pub const PORTS: u16 = 8;

    /// A request from the core.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Request {
        /// Domain `guest` (its table index) uses the device from now on,
        /// under `name` (UTF-8, `len` bytes). With `fresh`, the domain is
        /// new in that slot (created or restarted since the service last
        /// heard of it): whatever the service holds for the slot belonged
        /// to another domain, or to this one before its restart, and is
        /// replaced by a device as after reset (pending output printed
        /// first). Without, the service itself restarted and the domain
        /// is the one it may already hold state for, which `incarnation`
        /// confirms: a fresh `Attach` lost with a ring the core started
        /// over reaches the service as one without.
        Attach {
            /// The domain's index.
            guest: u8,
            /// Its name.
            name: [u8; 16],
            /// Bytes of `name` used.
            len: u8,
            /// A new domain in the slot.
            fresh: bool,
            /// Which domain, and which run of it, holds the slot: the
            /// slot's generation and the domain's restart count. Two
            /// `Attach`es for one slot name the same domain in the same
            /// run exactly when these are equal.
            incarnation: [u32; 2],
        },
        /// One-byte accesses to `guest`'s UART registers: `writes` (the
        /// domain's `OUT`s the core accepted at once, in order), then, when
        /// `read` is `Some(offset)`, an `IN` the domain waits for,
        /// answered with a [`Response`] carrying `seq`.
        Accesses {
            /// Matches the response to the read.
            seq: u32,
            /// The domain's index.
            guest: u8,
            /// The posted writes.
            writes: Posted,
            /// The register read last, if any.
            read: Option<u8>,
        },
        /// Domain `guest` stopped (queued after its last posted writes):
        /// drop its state. Not sent when the ring is full; the next fresh
        /// `Attach` in the slot replaces the state then.
        Detach {
            /// The domain's index.
            guest: u8,
        },
        /// To the platform service: another device of PC guest `guest`
        /// drives its interrupt line `line` (0–15) `high` or low (the
        /// 16550's INTR on line 4, say; see [`Call::IrqLine`](crate::Call)).
        Line {
            /// The domain's index.
            guest: u8,
            /// The PIC input (IRQ number).
            line: u8,
            /// The level.
            high: bool,
        },
    }

    /// Register writes (offset, value) a domain made that the core accepted
    /// without waiting for the service, at most [`POSTED_MAX`], in order.
    /// On the wire: postcard bytes (length, then offset and value pairs).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Posted {
        len: u8,
        pairs: [u8; 2 * POSTED_MAX],
    }

    impl Default for Posted {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Posted {
        /// No writes.
        pub const fn new() -> Self {
            Self {
                len: 0,
                pairs: [0; 2 * POSTED_MAX],
            }
        }

        /// Adds a write; `false` (nothing added) when [`POSTED_MAX`] are
        /// held already.
        pub fn push(&mut self, offset: u8, value: u8) -> bool {
            let at = 2 * self.len as usize;
            let Some(pair) = self.pairs.get_mut(at..at + 2) else {
                return false;
            };
            pair.copy_from_slice(&[offset, value]);
            self.len += 1;
            true
        }

        /// Writes held.
        pub const fn len(&self) -> usize {
            self.len as usize
        }

        /// Whether none are held.
        pub const fn is_empty(&self) -> bool {
            self.len == 0
        }

        /// Forgets every write.
        pub fn clear(&mut self) {
            self.len = 0;
        }

        /// The writes, oldest first, as (offset, value).
        pub fn iter(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
            self.bytes().chunks_exact(2).map(|p| (p[0], p[1]))
        }

        fn bytes(&self) -> &[u8] {
            &self.pairs[..2 * self.len as usize]
        }
    }

    impl Serialize for Posted {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.bytes())
        }
    }

    impl<'de> Deserialize<'de> for Posted {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Pairs;
            impl serde::de::Visitor<'_> for Pairs {
                type Value = Posted;
                fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    write!(f, "at most {POSTED_MAX} (offset, value) byte pairs")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Posted, E> {
                    if !v.len().is_multiple_of(2) || v.len() > 2 * POSTED_MAX {
                        return Err(E::invalid_length(v.len(), &self));
                    }
                    let mut p = Posted::new();
                    p.pairs[..v.len()].copy_from_slice(v);
                    p.len = (v.len() / 2) as u8;
                    Ok(p)
                }
            }
            d.deserialize_bytes(Pairs)
        }
    }

    /// The service's answer to a read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Response {
        /// The request's `seq`.
        pub seq: u32,
        /// The domain's index.
        pub guest: u8,
        /// The byte read.
        pub value: u8,
    }

    /// Bit 63 of an answer word: an answer is present.
    pub const ANSWER_PRESENT: u64 = 1 << 63;

    impl Response {
        /// The answer as the register word `IOREQ_WAIT`/`IOREQ_DONE` take
        /// in RSI: [`ANSWER_PRESENT`] | `seq` << 16 | `guest` << 8 |
        /// `value` (bits 48–62 zero). The last answer of a round travels
        /// this way instead of on the response ring: no encoding, no ring.
        pub const fn to_word(self) -> u64 {
            ANSWER_PRESENT | (self.seq as u64) << 16 | (self.guest as u64) << 8 | self.value as u64
        }

        /// The answer in a register word: `Ok(None)` for 0 (no answer),
        /// `Err(())` for a word that is neither 0 nor a well-formed answer
        /// (reserved bits set or the present bit clear).
        #[allow(clippy::result_unit_err)]
        pub const fn from_word(word: u64) -> Result<Option<Self>, ()> {
            if word == 0 {
                return Ok(None);
            }
            if word & ANSWER_PRESENT == 0 || word & 0x7fff_0000_0000_0000 != 0 {
                return Err(());
            }
            Ok(Some(Self {
                seq: (word >> 16) as u32,
                guest: (word >> 8) as u8,
                value: word as u8,
            }))
        }
    }
}

/// Guest-physical address of the [`StartInfo`] page the core writes into
/// every domain it starts from the boot manifest; RDI holds it at entry.
pub const START_INFO_GPA: u64 = 0x6000;

/// Lowest guest-physical address a domain image may use: below it the core
/// keeps the domain's page tables, GDT and start-info page.
pub const IMAGE_FLOOR: u64 = 0x10_0000;

/// Most named capabilities in a [`StartInfo`].
pub const START_SLOTS: usize = 24;

/// `StartInfo::magic`.
pub const START_MAGIC: u64 = u64::from_le_bytes(*b"BHSTART1");

/// What a domain finds at [`START_INFO_GPA`] when it starts: its name, its
/// memory, and the capabilities the manifest gave it, by name.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StartInfo {
    /// [`START_MAGIC`].
    pub magic: u64,
    /// Bytes of memory at guest-physical 0.
    pub memory_bytes: u64,
    /// The domain's name (UTF-8, `name_len` bytes).
    pub name: [u8; 16],
    /// Length of `name`.
    pub name_len: u8,
    /// Entries used in `slots`.
    pub slot_count: u8,
    /// The domain's priority.
    pub priority: u8,
    /// Reserved, zero.
    pub reserved: [u8; 5],
    /// The named capabilities.
    pub slots: [StartSlot; START_SLOTS],
}

/// One named capability in a [`StartInfo`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct StartSlot {
    /// Its name: `memory` for the domain's own memory, a channel's name, a
    /// controlled domain's name, `ports` for a port range, `spare` for
    /// spare memory, `free` for the memory broker's free memory, or
    /// `guest:NAME` for the image of guest NAME (given to the launcher).
    pub name: [u8; 24],
    /// Length of `name`.
    pub name_len: u8,
    /// [`ObjectType`] as a number.
    pub kind: u8,
    /// [`Rights`] bits.
    pub rights: u8,
    /// For a guest image: the guest's priority; otherwise 0.
    pub priority: u8,
    /// The slot number.
    pub slot: u32,
    /// For a channel: where its pages are mapped in this domain; for a port
    /// range: its first port; for a guest image: the memory the guest asks
    /// for, in bytes; for a controlled domain: what it serves the others,
    /// [`role`] bits (0 for none).
    pub gpa: u64,
    /// For a channel or memory: its size in bytes; for a port range: the
    /// number of ports; for a guest image: the image's length in bytes (the
    /// region is that rounded up to pages).
    pub size: u64,
}

/// What a domain serves the rest of the system, as a supervisor finds it
/// in the [`StartSlot`] of a domain it controls (bits of `gpa`): a
/// supervisor's shell refuses to stop or destroy such a domain (its own
/// console, the memory it hands out, its PC guests' devices hang on it).
pub mod role {
    /// The UART service: every domain's console, the keyboard included.
    pub const CONSOLE: u64 = 1;
    /// The memory broker: the free memory.
    pub const MEMORY: u64 = 2;
    /// The platform service: PC guests' legacy devices.
    pub const PLATFORM: u64 = 4;
}

impl StartSlot {
    /// The name as text (empty if it is not UTF-8).
    pub fn name(&self) -> &str {
        let n = (self.name_len as usize).min(self.name.len());
        core::str::from_utf8(&self.name[..n]).unwrap_or("")
    }
}

impl StartInfo {
    /// The domain's name as text (empty if it is not UTF-8).
    pub fn name(&self) -> &str {
        let n = (self.name_len as usize).min(self.name.len());
        core::str::from_utf8(&self.name[..n]).unwrap_or("")
    }

    /// The named capability `name`.
    pub fn find(&self, name: &str) -> Option<&StartSlot> {
        let n = (self.slot_count as usize).min(START_SLOTS);
        self.slots[..n].iter().find(|s| s.name() == name)
    }
}

/// Status codes returned in RAX.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// RAX held a number that is not a hypercall.
    UnknownCall = 1,
    /// An argument is out of range (a length too long, a reserved value).
    InvalidArgument = 2,
    /// A guest-physical address range is not inside the caller's memory,
    /// is unaligned, wraps around, or overlaps an existing mapping.
    InvalidAddress = 3,
    /// The operation is not allowed on this object in its current state.
    Denied = 4,
    /// A bounded core resource is exhausted (slots, objects, memory).
    OutOfResources = 5,
    /// The slot number is beyond the caller's capability space.
    InvalidSlot = 6,
    /// The slot holds no capability.
    EmptySlot = 7,
    /// The capability names an object that was destroyed (or restarted).
    StaleCapability = 8,
    /// The capability names an object of another type.
    WrongType = 9,
    /// The capability lacks a right the call needs, or asks for more than
    /// it holds.
    InsufficientRights = 10,
    /// A wait ended because its timeout expired.
    TimedOut = 11,
}

impl Status {
    /// Every status, in number order.
    pub const ALL: [Status; 12] = [
        Status::Ok,
        Status::UnknownCall,
        Status::InvalidArgument,
        Status::InvalidAddress,
        Status::Denied,
        Status::OutOfResources,
        Status::InvalidSlot,
        Status::EmptySlot,
        Status::StaleCapability,
        Status::WrongType,
        Status::InsufficientRights,
        Status::TimedOut,
    ];

    /// Decodes a status value; `None` for values the ABI does not define.
    pub const fn from_raw(raw: u64) -> Option<Status> {
        if raw < Status::ALL.len() as u64 {
            Some(Status::ALL[raw as usize])
        } else {
            None
        }
    }

    /// The value placed in RAX.
    pub const fn raw(self) -> u64 {
        self as u32 as u64
    }

    /// A short description for logs.
    pub const fn description(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::UnknownCall => "unknown hypercall",
            Status::InvalidArgument => "invalid argument",
            Status::InvalidAddress => "invalid guest-physical address",
            Status::Denied => "denied",
            Status::OutOfResources => "out of resources",
            Status::InvalidSlot => "invalid slot",
            Status::EmptySlot => "empty slot",
            Status::StaleCapability => "stale capability",
            Status::WrongType => "wrong object type",
            Status::InsufficientRights => "insufficient rights",
            Status::TimedOut => "timed out",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.description())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn start_info_fits_its_page_and_finds_names() {
        assert!(core::mem::size_of::<StartInfo>() <= 4096);
        let mut info = StartInfo {
            magic: START_MAGIC,
            memory_bytes: 0,
            name: [0; 16],
            name_len: 200,
            slot_count: 255,
            priority: 0,
            reserved: [0; 5],
            slots: [StartSlot::default(); START_SLOTS],
        };
        info.slots[3].name[..4].copy_from_slice(b"chan");
        info.slots[3].name_len = 4;
        info.slots[3].slot = 7;
        // Out-of-range lengths are clamped, never trusted.
        assert_eq!(info.name(), "\0".repeat(16));
        assert_eq!(info.find("chan").map(|s| s.slot), Some(7));
        assert!(info.find("other").is_none());
    }

    #[test]
    fn signature_registers_spell_the_signature() {
        let (b, c, d) = signature_registers();
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&b.to_le_bytes());
        bytes[4..8].copy_from_slice(&c.to_le_bytes());
        bytes[8..].copy_from_slice(&d.to_le_bytes());
        assert_eq!(&bytes, b"BulkheadCore");
    }

    #[test]
    fn calls_round_trip_and_unknown_numbers_are_refused() {
        for (n, call) in Call::ALL.iter().enumerate() {
            assert_eq!(Call::from_raw(n as u64), Some(*call));
            assert_eq!(*call as u64, n as u64);
        }
        assert_eq!(Call::from_raw(Call::ALL.len() as u64), None);
        assert_eq!(Call::from_raw(u64::MAX), None);
    }

    #[test]
    fn statuses_round_trip_and_ok_is_zero() {
        assert_eq!(Status::Ok.raw(), 0);
        for raw in 0..Status::ALL.len() as u64 {
            assert_eq!(Status::from_raw(raw).unwrap().raw(), raw);
        }
        assert_eq!(Status::from_raw(Status::ALL.len() as u64), None);
        assert_eq!(Status::from_raw(1 << 40), None);
    }

    #[test]
    fn answer_words_round_trip_and_refuse_malformed_ones() {
        use ioreq::{Response, ANSWER_PRESENT};
        for (seq, guest, value) in [(0, 0, 0), (u32::MAX, 255, 255), (0x1234_5678, 7, 0x5a)] {
            let r = Response { seq, guest, value };
            assert_eq!(Response::from_word(r.to_word()), Ok(Some(r)));
            assert_ne!(r.to_word(), 0);
        }
        assert_eq!(Response::from_word(0), Ok(None));
        // The present bit clear, or a reserved bit set.
        assert_eq!(Response::from_word(0x42), Err(()));
        assert_eq!(Response::from_word(ANSWER_PRESENT | 1 << 48), Err(()));
        assert_eq!(Response::from_word(ANSWER_PRESENT | 1 << 62), Err(()));
        assert_eq!(Response::from_word(u64::MAX), Err(()));
    }

    #[test]
    fn posted_writes_travel_as_bytes_and_refuse_bad_lengths() {
        use ioreq::{Posted, Request, POSTED_MAX};
        let mut buf = [0u8; 64];
        for k in [0usize, 1, 3, POSTED_MAX] {
            let mut writes = Posted::new();
            for i in 0..k {
                assert!(writes.push(i as u8 % 8, 0x30 + i as u8));
            }
            assert_eq!(writes.len(), k);
            for read in [None, Some(5)] {
                let req = Request::Accesses {
                    seq: 300,
                    guest: 2,
                    writes,
                    read,
                };
                let bytes = postcard::to_slice(&req, &mut buf).unwrap();
                // Tag, seq (2 bytes), guest, byte count, pairs, option.
                let expect = 1 + 2 + 1 + 1 + 2 * k + 1 + usize::from(read.is_some());
                assert_eq!(bytes.len(), expect, "{k} writes");
                let back: Request = postcard::from_bytes(bytes).unwrap();
                assert_eq!(back, req);
                if let Request::Accesses { writes: w, .. } = back {
                    let got: std::vec::Vec<_> = w.iter().collect();
                    let want: std::vec::Vec<_> =
                        (0..k).map(|i| (i as u8 % 8, 0x30 + i as u8)).collect();
                    assert_eq!(got, want);
                }
            }
        }
        // Full: nothing more is taken.
        let mut full = Posted::new();
        while full.push(1, 2) {}
        assert_eq!(full.len(), POSTED_MAX);
        full.clear();
        assert!(full.is_empty());
        // An odd byte count, or more pairs than POSTED_MAX, is refused.
        // Frames built by hand: tag, seq 0, guest 0, byte count, pairs, None.
        let tag = postcard::to_slice(
            &Request::Accesses {
                seq: 0,
                guest: 0,
                writes: Posted::new(),
                read: None,
            },
            &mut buf,
        )
        .unwrap()[0];
        let odd = [tag, 0, 0, 3, 1, 2, 3, 0];
        assert!(postcard::from_bytes::<Request>(&odd).is_err());
        let mut long = std::vec![tag, 0, 0, 2 * POSTED_MAX as u8 + 2];
        long.extend(core::iter::repeat_n(1u8, 2 * POSTED_MAX + 2));
        long.push(0);
        assert!(postcard::from_bytes::<Request>(&long).is_err());
        let ok = [tag, 0, 0, 2, 1, 2, 0];
        assert!(postcard::from_bytes::<Request>(&ok).is_ok());
    }
}
