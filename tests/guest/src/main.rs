//! Reprise test guest: a PVH-bootable x86-64 program whose CPL0 part is a few
//! hundred lines of assembly and whose drivers and workloads run at CPL3.
#![no_std]
#![no_main]

mod apic;
mod cmdline;
mod cpl0;
mod io;
mod layout;
mod power;
mod pvh;
mod serial;
mod smp;

/// First CPL3 code on the BSP; `start_info` is the PVH start-info address.
pub extern "C" fn bsp_main(start_info: u64) -> ! {
    serial::init();
    println!("reprise-guest 0.1 booted");
    let boot = pvh::read(start_info);
    let cmdline = cmdline::Cmdline::new(boot.cmdline);
    println!("cmdline: {}", cmdline::Bytes(cmdline.raw()));
    match boot.ram_bytes() {
        Some(bytes) => println!("mem: {} MiB", bytes >> 20),
        None => println!("mem: unknown"),
    }
    println!("start_info={:#x}", start_info);
    println!("reprise-guest: done");
    power::reset()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fatal!("panic: {}", info.message())
}
