//! The atomics the ring is built on: `core`'s normally, loom's under
//! `--cfg loom` so the model checker sees every shared access.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU8, Ordering};
