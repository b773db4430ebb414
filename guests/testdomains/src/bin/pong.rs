//! Answers every message on the channel `ping-pong`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use testdomains::{read_message, write_message};
    rt::entry!(main);

    fn main(info: &'static rt::StartInfo) -> u64 {
        let Some(ch) = info.find("ping-pong") else {
            rt::log!("no channel ping-pong in my start info");
            return 1;
        };
        let (slot, gpa) = (ch.slot as u64, ch.gpa);
        for round in 1..=3 {
            if let Err(e) = rt::channel_wait(slot, u64::MAX) {
                rt::log!("wait failed: {e}");
                return 3;
            }
            let mut buf = [0u8; 64];
            rt::log!("received \"{}\"", read_message(gpa, &mut buf));
            let answer = rt::Line::format(format_args!("pong {round}"));
            write_message(gpa, answer.as_str());
            if let Err(e) = rt::channel_notify(slot) {
                rt::log!("notify failed: {e}");
                return 2;
            }
        }
        rt::log!("done after 3 answers");
        0
    }
}
