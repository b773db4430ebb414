//! Builds a domain at run time from its spare memory: splits it, writes a
//! small program into the child's part, creates the domain and a channel
//! to it, starts it, waits for its message, then destroys it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod domain {
    use rt::{Rights, Status, SLOT_SELF};
    use testdomains::read_message;
    rt::entry!(main);

    /// The child's memory (the rest of the spare region is the channel page).
    const CHILD_MEMORY: u64 = 2 << 20;
    /// Where the parent maps the child's memory to write its program.
    const WINDOW: u64 = 0x3000_0000;
    /// Where the channel page is mapped in both domains.
    const CHANNEL: u64 = 0x2000_0000;

    // The child: runs at its IMAGE_FLOOR with its channel slot in RDI. It
    // writes a message into the channel page, logs it, notifies the parent
    // and exits. Position-independent; the parent copies these bytes.
    core::arch::global_asm!(
        r#"
        .section .rodata.child, "a"
        .global child_start
        .global child_end
    child_start:
        mov r12, rdi
        movzx ecx, byte ptr [rip + child_msg_len]
        mov byte ptr [0x20000000], cl
        lea rsi, [rip + child_msg]
        mov rdi, 0x20000001
        rep movsb
        mov eax, 1
        lea rdi, [rip + child_msg]
        movzx esi, byte ptr [rip + child_msg_len]
        vmcall
        mov eax, 13
        mov rdi, r12
        vmcall
        mov eax, 2
        xor edi, edi
        vmcall
        hlt
    child_msg_len:
        .byte child_end - child_msg
    child_msg:
        .ascii "hello from a domain created by a hypercall"
    child_end:
    "#
    );

    unsafe extern "C" {
        static child_start: u8;
        static child_end: u8;
    }

    fn step<T>(what: &str, r: Result<T, Status>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                rt::log!("{what} failed: {e:?}");
                None
            }
        }
    }

    fn main(info: &'static rt::StartInfo) -> u64 {
        build(info).map_or(1, |()| 0)
    }

    fn build(info: &'static rt::StartInfo) -> Option<()> {
        let spare = info.find("spare")?.slot as u64;
        let page = step("split", rt::mem_split(spare, CHILD_MEMORY))?;
        step(
            "map the child's memory",
            rt::mem_map(SLOT_SELF, spare, WINDOW, Rights::READ | Rights::WRITE),
        )?;
        let program = {
            let start = core::ptr::addr_of!(child_start) as usize;
            let end = core::ptr::addr_of!(child_end) as usize;
            // SAFETY: the two symbols delimit the child program in this
            // image's read-only data.
            unsafe { core::slice::from_raw_parts(start as *const u8, end - start) }
        };
        for (i, &b) in program.iter().enumerate() {
            testdomains::arch::write_u8(WINDOW + rt::IMAGE_FLOOR + i as u64, b);
        }
        rt::log!(
            "wrote a {}-byte program into the child's memory",
            program.len()
        );
        let child = step("create", rt::domain_create(spare, 2, 8))?;
        let v = step(
            "channel",
            rt::channel_create(SLOT_SELF, child, page, CHANNEL),
        )?;
        let (mine, theirs) = (v & 0xffff, v >> 16);
        step(
            "set vcpu",
            rt::domain_set_vcpu(child, rt::IMAGE_FLOOR, CHILD_MEMORY - 0x1000, theirs),
        )?;
        step("start", rt::domain_start(child))?;
        rt::log!("created and started a domain (slot {child}), channel slot {mine}");
        step("wait", rt::channel_wait(mine, u64::MAX))?;
        let mut buf = [0u8; 64];
        rt::log!("received \"{}\"", read_message(CHANNEL, &mut buf));
        // The child has a lower priority: sleep (not yield) so it can finish.
        while step("status", rt::domain_status(child))? != Some(rt::DomainState::Stopped) {
            rt::sleep(100_000);
        }
        step("destroy", rt::domain_destroy(child))?;
        match rt::domain_status(child) {
            Err(Status::StaleCapability) => {
                rt::log!("destroyed the child; its capability is stale and its memory went back")
            }
            other => rt::log!("after destroy: UNEXPECTED {other:?}"),
        }
        Some(())
    }
}
