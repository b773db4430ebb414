//! Models of the legacy PC devices an unmodified Linux uses when it runs
//! without ACPI: the 8259A programmable interrupt controller pair
//! ([`PicPair`]) and the 8254 programmable interval timer with the
//! speaker/gate port 0x61 ([`Pit`]), the CMOS clock ([`Rtc`]), and [`Pc`],
//! one guest's set of them behind their ports.
//!
//! The models are bus-agnostic and pure: they take port accesses and the
//! current time (TSC ticks, converted with the TSC frequency the model was
//! given) and return values, interrupt requests and the time of the next
//! timer event; whoever runs them (a service domain) does the waiting and
//! the injecting. Every register value a guest can write is accepted
//! without panicking; reserved or meaningless combinations are ignored.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod pc;
mod pic;
mod pit;
mod rtc;

pub use pc::{Pc, MAX_MISSED_TICKS, PORTS};
pub use pic::{Pic, PicPair, MASTER_CMD, MASTER_DATA, SLAVE_CMD, SLAVE_DATA};
pub use pit::{
    Pit, PIT_HZ, PORT_CONTROL, PORT_COUNTER0, PORT_COUNTER1, PORT_COUNTER2, PORT_SPEAKER,
};
pub use rtc::Rtc;
