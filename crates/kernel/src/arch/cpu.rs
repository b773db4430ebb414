//! The core's own descriptor tables (GDT with a 64-bit TSS, IDT) and its
//! exception entry stubs. An exception in root mode is always a bug in the
//! core: the handler prints the vector, the error code and RIP, then stops
//! the machine with a failing status.

use core::ptr::addr_of;

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// Selectors of the core's GDT.
#[derive(Debug, Clone, Copy)]
pub struct Selectors {
    /// 64-bit code.
    pub code: SegmentSelector,
    /// Data.
    pub data: SegmentSelector,
    /// The TSS.
    pub tss: SegmentSelector,
}

/// Index of the TSS stack used for double faults.
const DOUBLE_FAULT_IST: u16 = 0;

static mut DOUBLE_FAULT_STACK: [u8; 16384] = [0; 16384];

static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<(GlobalDescriptorTable, Selectors)> = spin::Once::new();
static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

unsafe extern "C" {
    /// Table of the 32 exception stubs' addresses (defined below in assembly).
    static exception_stub_table: [u64; 32];
}

/// Loads the GDT (code, data, TSS), reloads every segment register and TR,
/// and loads the IDT. Call once, early.
pub fn init() -> Selectors {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        // Only the address of the static is taken; the CPU alone uses the
        // stack, for double faults.
        let bottom = addr_of!(DOUBLE_FAULT_STACK) as u64;
        tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = VirtAddr::new(bottom + 16384);
        tss
    });
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded; the TSS descriptor is
    // present and not busy.
    unsafe {
        CS::set_reg(selectors.code);
        SS::set_reg(selectors.data);
        DS::set_reg(selectors.data);
        ES::set_reg(selectors.data);
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(selectors.tss);
    }
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: the stub table holds the addresses of the stubs below,
        // which follow the interrupt-frame layout `exception_common` expects.
        let stubs = unsafe { &*addr_of!(exception_stub_table) };
        for (vector, &addr) in stubs.iter().enumerate() {
            // Vectors 9, 15 and 22..=31 are reserved: the crate offers no
            // entry for them.
            let entry = match vector {
                0 => &mut idt.divide_error,
                1 => &mut idt.debug,
                2 => &mut idt.non_maskable_interrupt,
                3 => &mut idt.breakpoint,
                4 => &mut idt.overflow,
                5 => &mut idt.bound_range_exceeded,
                6 => &mut idt.invalid_opcode,
                7 => &mut idt.device_not_available,
                16 => &mut idt.x87_floating_point,
                19 => &mut idt.simd_floating_point,
                20 => &mut idt.virtualization,
                _ => {
                    set_error_code_entry(&mut idt, vector, addr);
                    continue;
                }
            };
            // SAFETY: `addr` is an exception stub that never returns.
            unsafe {
                entry.set_handler_addr(VirtAddr::new(addr));
            }
        }
        unsafe extern "C" {
            fn apic_timer_stub();
            fn apic_spurious_stub();
        }
        // SAFETY: the stubs acknowledge the interrupt and return with IRETQ.
        unsafe {
            idt[super::apic::TIMER_VECTOR]
                .set_handler_addr(VirtAddr::new(apic_timer_stub as *const () as u64));
            idt[super::apic::SPURIOUS_VECTOR]
                .set_handler_addr(VirtAddr::new(apic_spurious_stub as *const () as u64));
        }
        idt
    });
    idt.load();
    *selectors
}

fn set_error_code_entry(idt: &mut InterruptDescriptorTable, vector: usize, addr: u64) {
    let addr = VirtAddr::new(addr);
    // SAFETY: in every arm, `addr` is the stub for this vector; stubs never
    // return, and the double-fault stack is a static reserved for it.
    unsafe {
        match vector {
            8 => {
                idt.double_fault
                    .set_handler_addr(addr)
                    .set_stack_index(DOUBLE_FAULT_IST);
            }
            10 => {
                idt.invalid_tss.set_handler_addr(addr);
            }
            11 => {
                idt.segment_not_present.set_handler_addr(addr);
            }
            12 => {
                idt.stack_segment_fault.set_handler_addr(addr);
            }
            13 => {
                idt.general_protection_fault.set_handler_addr(addr);
            }
            14 => {
                idt.page_fault.set_handler_addr(addr);
            }
            17 => {
                idt.alignment_check.set_handler_addr(addr);
            }
            18 => {
                idt.machine_check.set_handler_addr(addr);
            }
            21 => {
                idt.cp_protection_exception.set_handler_addr(addr);
            }
            29 => {
                idt.vmm_communication_exception.set_handler_addr(addr);
            }
            30 => {
                idt.security_exception.set_handler_addr(addr);
            }
            _ => {}
        }
    }
}

/// What the stubs push, lowest address first.
#[repr(C)]
struct ExceptionFrame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

fn name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection",
        14 => "page fault",
        16 => "x87 floating-point",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point",
        20 => "virtualization",
        21 => "control protection",
        _ => "reserved",
    }
}

/// Called by the stubs with a pointer to the frame. Never returns.
#[unsafe(no_mangle)]
extern "C" fn exception_handler(frame: &ExceptionFrame) -> ! {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    // The lines the UART service had not printed, then this one, straight
    // to the port: nothing runs after it.
    crate::domains::console_stop();
    log::error!(
        "CPU exception {} ({}) in the core: error code {:#x}, RIP {:#x}, RSP {:#x}, RFLAGS {:#x}, CR2 {:#x}",
        frame.vector,
        name(frame.vector),
        frame.error_code,
        frame.rip,
        frame.rsp,
        frame.rflags,
        cr2
    );
    let _ = frame.cs + frame.ss;
    super::shutdown(super::Status::CoreFault)
}

// One stub per vector: push a zero error code where the CPU pushes none, push
// the vector, and call the handler with RSP pointing at the frame.
core::arch::global_asm!(
    r#"
    .section .text
    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
exception_stub_\n:
    push 0
    push \n
    jmp exception_common
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
exception_stub_\n:
    push \n
    jmp exception_common
    .endr
exception_common:
    mov rdi, rsp
    and rsp, -16
    call exception_handler
    ud2

    .section .rodata
    .balign 8
    .global exception_stub_table
exception_stub_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exception_stub_\n
    .endr
"#
);

/// Address of the core's TSS (for the VMCS host state).
pub fn tss_base() -> u64 {
    TSS.get()
        .map_or(0, |tss| tss as *const TaskStateSegment as u64)
}
