//! Reprise test guest: a PVH-bootable x86-64 program whose CPL0 part is a few
//! hundred lines of assembly and whose drivers and workloads run at CPL3.
#![no_std]
#![no_main]

mod apic;
mod cmdline;
mod cpl0;
mod crc32;
mod dma;
mod inet;
mod io;
mod layout;
mod pattern;
mod power;
mod pvh;
mod serial;
mod smp;
mod timer;
mod virtio;
mod workload;

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
    if let Some((addr, size)) = boot.initrd {
        // SAFETY: the loader placed the module in identity-mapped, user-accessible RAM.
        let data = unsafe { core::slice::from_raw_parts(addr as *const u8, size as usize) };
        let mut crc = crc32::Crc32::new();
        crc.update(data);
        println!("initrd: size={} crc32={:08x}", size, crc.finish());
    }
    apic::lapic_init();
    let bsp = apic::apic_id();
    let (slots, nslots) = virtio::discover(&cmdline, bsp);
    let cpus = cmdline.u64("cpus", 1);
    if cpus > 1 {
        smp::start(cpus as usize);
    }
    let env = workload::Env {
        cmdline,
        boot: &boot,
        slots: &slots[..nslots],
    };
    workload::run(&env);
    println!("reprise-guest: done");
    power::reset()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fatal!("panic: {}", info.message())
}

/// Never called (panics abort); only unoptimised builds of `core` refer to it.
#[no_mangle]
extern "C" fn rust_eh_personality() {}
