//! A PC guest drives its legacy devices (PIC pair, PIT, CMOS clock, ELCR)
//! with any sequence of port writes and reads while time passes and its
//! interrupt lines move, and the platform service takes the interrupts
//! its PIC offers after each step (at most 16, as the service does: a
//! level-triggered line held high under automatic EOI offers the same
//! interrupt without end, as hardware would). The model must never panic
//! and must offer only vectors the guest's ICW2 bases give.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_devices::{Pc, PIT_HZ};

fuzz_target!(|data: &[u8]| {
    // A TSC a few times faster than the PIT, as under Bochs or faster.
    let hz = PIT_HZ * u64::from(data.first().copied().unwrap_or(3).max(1));
    let mut pc = Pc::new(hz);
    let mut now = 0u64;
    for op in data.get(1..).unwrap_or(&[]).chunks(3) {
        let [kind, index, value] = *op else { break };
        match kind % 4 {
            0 => pc.write(index % 20, value, now),
            1 => {
                pc.read(index % 20, now);
            }
            2 => now = now.saturating_add(u64::from(value) * u64::from(index) * 97),
            _ => pc.pics.set_irq(index % 16, value & 1 == 1),
        }
        pc.tick(now);
        // What the platform service does after every round.
        for _ in 0..16 {
            let Some(vector) = pc.next_vector() else {
                break;
            };
            let bases = [pc.pics.master.base(), pc.pics.slave.base()];
            assert!(
                bases.iter().any(|b| vector.wrapping_sub(*b) < 8),
                "vector {vector:#x} from bases {bases:x?}"
            );
        }
    }
});
