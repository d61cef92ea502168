//! PVH boot: load an ELF kernel with a Xen PVH note and write `hvm_start_info`, the memory
//! map, the command line and the initrd module into guest memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use devices::GuestMemory;
use linux_loader::cmdline::Cmdline;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::{load_cmdline, KernelLoader};
use linux_loader::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::{BootError, BootProtocol, BootRegs};
use crate::arch::{layout, regs};

const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
/// End of conventional memory below the legacy VGA/BIOS area.
const LOW_RAM_END: u64 = 0xa_0000;

/// Loads the ELF at `path` at its physical addresses.
pub fn load_kernel(mem: &GuestMemory, path: &Path) -> Result<BootProtocol, BootError> {
    let mut file = File::open(path).map_err(|source| BootError::Read {
        what: "kernel image",
        path: path.to_owned(),
        source,
    })?;
    let result = Elf::load(
        mem,
        None,
        &mut file,
        Some(GuestAddress(layout::HIMEM_START)),
    )
    .map_err(|source| BootError::Load {
        path: path.to_owned(),
        source,
    })?;
    match result.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(entry) => Ok(BootProtocol::Pvh { entry: entry.0 }),
        _ => Err(BootError::NoPvhEntry(path.to_owned())),
    }
}

/// Builds the command line: the user's arguments followed by the device entries.
pub fn build_cmdline(user_args: &str, device_entries: &[String]) -> Result<Cmdline, BootError> {
    let mut cmdline =
        Cmdline::new(layout::CMDLINE_MAX_SIZE).map_err(|e| BootError::Cmdline(e.to_string()))?;
    let user = user_args.trim();
    if !user.is_empty() {
        cmdline
            .insert_str(user)
            .map_err(|e| BootError::Cmdline(format!("{e}: {user:?}")))?;
    }
    for entry in device_entries {
        cmdline
            .insert_str(entry)
            .map_err(|e| BootError::Cmdline(format!("{e}: {entry:?}")))?;
    }
    Ok(cmdline)
}

fn memmap(mem: &GuestMemory) -> Vec<hvm_memmap_table_entry> {
    let entry = |addr, size, type_| hvm_memmap_table_entry {
        addr,
        size,
        type_,
        reserved: 0,
    };
    let mut map = vec![
        entry(0, LOW_RAM_END, E820_RAM),
        entry(
            LOW_RAM_END,
            layout::HIMEM_START - LOW_RAM_END,
            E820_RESERVED,
        ),
    ];
    for region in mem.iter() {
        use vm_memory::GuestMemoryRegion;
        let start = region.start_addr().0.max(layout::HIMEM_START);
        let end = region.start_addr().0 + region.len();
        if end > start {
            map.push(entry(start, end - start, E820_RAM));
        }
    }
    map
}

/// Places the initrd at the top of low RAM; returns (address, size).
fn load_initrd(mem: &GuestMemory, path: &PathBuf) -> Result<(u64, u64), BootError> {
    let data = std::fs::read(path).map_err(|source| BootError::Read {
        what: "initrd",
        path: path.clone(),
        source,
    })?;
    let size = data.len() as u64;
    let low_end = mem
        .last_addr()
        .0
        .saturating_add(1)
        .min(layout::INITRD_MAX_END);
    let addr = low_end
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|&a| a >= layout::HIMEM_START);
    let Some(addr) = addr else {
        return Err(BootError::InitrdTooBig {
            path: path.clone(),
            size,
            limit: low_end,
        });
    };
    mem.write_slice(&data, GuestAddress(addr))
        .map_err(|e| BootError::Setup(e.to_string()))?;
    Ok((addr, size))
}

/// Writes the command line, optional initrd and PVH structures; returns the boot registers.
pub fn configure(
    mem: &GuestMemory,
    entry: u64,
    cmdline: &Cmdline,
    initrd: Option<&PathBuf>,
) -> Result<BootRegs, BootError> {
    load_cmdline(mem, GuestAddress(layout::CMDLINE_START), cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    let map = memmap(mem);
    if map.len() > layout::PVH_MEMMAP_MAX_ENTRIES {
        return Err(BootError::Setup(format!(
            "{} memory map entries is too many",
            map.len()
        )));
    }
    let mut start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: layout::CMDLINE_START,
        memmap_paddr: layout::PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    let module = match initrd {
        Some(path) => {
            let (paddr, size) = load_initrd(mem, path)?;
            start_info.nr_modules = 1;
            start_info.modlist_paddr = layout::PVH_MODLIST_START;
            Some(hvm_modlist_entry {
                paddr,
                size,
                ..Default::default()
            })
        }
        None => None,
    };
    let mut params = BootParams::new(&start_info, GuestAddress(layout::PVH_INFO_START));
    params.set_sections(&map, GuestAddress(layout::PVH_MEMMAP_START));
    if let Some(m) = module {
        params.set_modules(&[m], GuestAddress(layout::PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams::<GuestMemory>(&params, mem)
        .map_err(|e| BootError::Setup(e.to_string()))?;
    Ok(BootRegs {
        regs: regs::pvh_regs(entry, layout::PVH_INFO_START),
        set_sregs: regs::pvh_sregs,
    })
}
