//! The PVH `hvm_start_info` structure handed over in %ebx at entry.

const MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
/// Longest command line kept.
const CMDLINE_MAX: usize = 4096;
/// Most RAM ranges kept from the memory map.
const MAX_RAM_RANGES: usize = 32;

#[repr(C)]
#[allow(dead_code)] // Mirrors the ABI; not every field is used.
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[allow(dead_code)] // Mirrors the ABI; not every field is used.
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

#[repr(C)]
#[allow(dead_code)] // Mirrors the ABI; not every field is used.
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// A usable RAM range from the memory map.
#[derive(Clone, Copy, Default)]
pub struct RamRange {
    pub start: u64,
    pub end: u64,
}

/// What the guest keeps from the start info.
pub struct BootInfo {
    /// The kernel command line (copied out of low memory).
    pub cmdline: &'static [u8],
    /// Usable RAM ranges, if the loader passed a memory map.
    pub ram: Option<&'static [RamRange]>,
    /// The first module (the initrd): physical address and size.
    pub initrd: Option<(u64, u64)>,
}

impl BootInfo {
    /// Total usable RAM in bytes, if known.
    pub fn ram_bytes(&self) -> Option<u64> {
        self.ram.map(|r| r.iter().map(|r| r.end - r.start).sum())
    }

    /// Whether `[start, end)` lies inside one usable RAM range (true if unknown).
    pub fn is_ram(&self, start: u64, end: u64) -> bool {
        match self.ram {
            None => true,
            Some(ranges) => ranges.iter().any(|r| r.start <= start && end <= r.end),
        }
    }
}

static mut CMDLINE: [u8; CMDLINE_MAX] = [0; CMDLINE_MAX];
static mut RAM: [RamRange; MAX_RAM_RANGES] = [RamRange { start: 0, end: 0 }; MAX_RAM_RANGES];

/// Read the start info at physical address `paddr`. Called once, on the BSP,
/// before anything else can touch the statics it fills.
pub fn read(paddr: u64) -> BootInfo {
    if paddr == 0 || !paddr.is_multiple_of(8) {
        crate::fatal!("bad hvm_start_info address {:#x}", paddr);
    }
    // SAFETY: the loader placed the structure at `paddr` in identity-mapped RAM.
    let info = unsafe { &*(paddr as *const HvmStartInfo) };
    if info.magic != MAGIC {
        crate::fatal!("bad hvm_start_info magic {:#x}", info.magic);
    }
    // SAFETY: single-threaded early boot; nothing else refers to these statics.
    let (cmdline_buf, ram_buf) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(CMDLINE),
            &mut *core::ptr::addr_of_mut!(RAM),
        )
    };

    let mut len = 0;
    if info.cmdline_paddr != 0 {
        let src = info.cmdline_paddr as *const u8;
        while len < CMDLINE_MAX {
            // SAFETY: the command line is a NUL-terminated string in identity-mapped RAM.
            let b = unsafe { src.add(len).read_volatile() };
            if b == 0 {
                break;
            }
            cmdline_buf[len] = b;
            len += 1;
        }
    }

    let mut ram = None;
    if info.version >= 1 && info.memmap_paddr != 0 {
        let entries = info.memmap_paddr as *const MemmapEntry;
        let mut n = 0;
        for i in 0..info.memmap_entries as usize {
            // SAFETY: the loader's memory map has `memmap_entries` entries at `memmap_paddr`.
            let e = unsafe { &*entries.add(i) };
            if e.kind == E820_RAM && e.size != 0 && n < MAX_RAM_RANGES {
                ram_buf[n] = RamRange {
                    start: e.addr,
                    end: e.addr + e.size,
                };
                n += 1;
            }
        }
        ram = Some(&ram_buf[..n]);
    }
    let initrd = if info.nr_modules > 0 && info.modlist_paddr != 0 {
        // SAFETY: the loader's module list has `nr_modules` entries at `modlist_paddr`.
        let m = unsafe { &*(info.modlist_paddr as *const ModlistEntry) };
        Some((m.paddr, m.size))
    } else {
        None
    };
    BootInfo {
        cmdline: &cmdline_buf[..len],
        ram,
        initrd,
    }
}
