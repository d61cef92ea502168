//! Guest page-table walks: translating guest virtual addresses to guest physical ones by
//! reading the guest's page tables from guest memory, the way the vCPU's MMU would.
//!
//! Supported modes: paging off, 32-bit two-level paging (with 4 MiB pages under CR4.PSE),
//! PAE three-level paging, and long mode with four or five levels (with 2 MiB and 1 GiB
//! pages). Only the present, writable and user bits are interpreted; reserved bits,
//! execute-disable, protection keys and CR0.WP are not checked.
//!
//! Page-table levels are numbered from the leaf up: 1 is the page table, 2 the page
//! directory, 3 the page-directory-pointer table, 4 the PML4 and 5 the PML5.

use devices::GuestMemory;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// CR0.PG: paging enabled.
const CR0_PG: u64 = 1 << 31;
/// CR4.PSE: 4 MiB pages in 32-bit paging.
const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: 64-bit page-table entries.
const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57: five-level paging in long mode.
const CR4_LA57: u64 = 1 << 12;
/// EFER.LMA: long mode active.
const EFER_LMA: u64 = 1 << 10;

/// Page-table entry: present.
const PTE_PRESENT: u64 = 1 << 0;
/// Page-table entry: writable.
const PTE_WRITABLE: u64 = 1 << 1;
/// Page-table entry: accessible from user mode.
const PTE_USER: u64 = 1 << 2;
/// Page-table entry above level 1: maps a large page instead of pointing to a table.
const PTE_LARGE: u64 = 1 << 7;

/// Physical-address bits 12..=51 of a 64-bit page-table entry or of CR3.
const PHYS_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Physical-address bits 12..=31 of a 32-bit page-table entry or of CR3.
const PHYS_ADDR_MASK_32: u64 = 0xffff_f000;
/// CR3 bits 5..=31: the page-directory-pointer table under PAE paging.
const PAE_CR3_MASK: u64 = 0xffff_ffe0;

/// Size of a 4 KiB page.
const PAGE_4K: u64 = 1 << 12;
/// Size of a 4 MiB page (32-bit paging).
const PAGE_4M: u64 = 1 << 22;

/// The registers that decide how the guest translates virtual addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Paging {
    /// Control register 0 (PG, bit 31, enables paging).
    pub cr0: u64,
    /// Control register 3 (the page-table root).
    pub cr3: u64,
    /// Control register 4 (PSE bit 4, PAE bit 5, LA57 bit 12).
    pub cr4: u64,
    /// The extended feature enable register (LMA, bit 10, selects long mode).
    pub efer: u64,
}

/// The translation scheme a [`Paging`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// Paging is off: virtual addresses are physical addresses.
    Off,
    /// 32-bit two-level paging.
    Bits32,
    /// PAE three-level paging.
    Pae,
    /// Long mode, four levels (48-bit virtual addresses).
    Level4,
    /// Long mode, five levels (57-bit virtual addresses).
    Level5,
}

impl Paging {
    /// Takes the paging registers from a vCPU's special registers.
    pub fn from_sregs(s: &kvm_bindings::kvm_sregs) -> Self {
        Paging {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer,
        }
    }

    /// The translation scheme these registers select.
    pub fn mode(&self) -> PagingMode {
        if self.cr0 & CR0_PG == 0 {
            PagingMode::Off
        } else if self.efer & EFER_LMA != 0 {
            if self.cr4 & CR4_LA57 != 0 {
                PagingMode::Level5
            } else {
                PagingMode::Level4
            }
        } else if self.cr4 & CR4_PAE != 0 {
            PagingMode::Pae
        } else {
            PagingMode::Bits32
        }
    }
}

/// Where a guest virtual address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The guest physical address.
    pub gpa: u64,
    /// Whether every entry along the walk allows user-mode access (U/S set at each level
    /// that has the bit). With paging off there is no page-level protection and this is
    /// reported as `false` (a supervisor mapping).
    pub user: bool,
    /// Whether every entry along the walk allows writes (R/W set at each level that has the
    /// bit). With paging off this is `true`.
    pub writable: bool,
    /// The size of the page that maps the address: 4 KiB, 2 MiB, 4 MiB or 1 GiB (4 KiB with
    /// paging off).
    pub page_size: u64,
}

/// Why a guest virtual address could not be translated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalkError {
    /// The walk met an entry without the present bit.
    #[error(
        "guest virtual address {gva:#x} is not mapped (no present entry at page-table level {level})"
    )]
    NotMapped {
        /// The address being translated.
        gva: u64,
        /// The level of the first non-present entry (1 = page table).
        level: u8,
    },
    /// The address is not valid in the current paging mode: not canonical in long mode
    /// (bits above 47, or 56 with five levels, are not copies of that bit), or above 4 GiB
    /// under 32-bit or PAE paging.
    #[error("guest virtual address {gva:#x} is not canonical for the guest's paging mode")]
    NonCanonical {
        /// The address being translated.
        gva: u64,
    },
    /// A page table the walk needed lies outside guest RAM.
    #[error(
        "page table at guest physical address {table_gpa:#x}, needed to translate {gva:#x}, is outside guest RAM"
    )]
    TableOutsideRam {
        /// The address being translated.
        gva: u64,
        /// The guest physical address of the table.
        table_gpa: u64,
    },
}

/// Why a read or write through guest virtual addresses failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// An address in the range could not be translated; the error names the first one.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// An address in the range translates to guest physical memory that is not RAM.
    #[error(
        "guest virtual address {gva:#x} maps to guest physical address {gpa:#x}, outside guest RAM"
    )]
    OutsideRam {
        /// The first virtual address of the part that is not backed by RAM.
        gva: u64,
        /// Its guest physical address.
        gpa: u64,
    },
    /// The range runs past the end of the 64-bit address space.
    #[error("{len} bytes at guest virtual address {gva:#x} run past the end of the address space")]
    Wraps {
        /// The start of the range.
        gva: u64,
        /// The length of the range.
        len: usize,
    },
}

/// Reads one page-table entry of `size` bytes (4 or 8), little-endian.
fn read_entry(
    mem: &GuestMemory,
    gva: u64,
    table_gpa: u64,
    index: u64,
    size: u64,
) -> Result<u64, WalkError> {
    let mut raw = [0u8; 8];
    let len = size as usize;
    mem.read_slice(&mut raw[..len], GuestAddress(table_gpa + index * size))
        .map_err(|_| WalkError::TableOutsideRam { gva, table_gpa })?;
    Ok(u64::from_le_bytes(raw))
}

/// Whether `gva` sign-extends from bit `bits - 1`.
fn is_canonical(gva: u64, bits: u32) -> bool {
    let shift = 64 - bits;
    (((gva << shift) as i64) >> shift) as u64 == gva
}

/// Translates a guest virtual address as the guest's MMU would under `paging`.
///
/// With paging off the address is its own physical address (any 64-bit value is accepted),
/// reported as a writable supervisor mapping of a 4 KiB page.
pub fn translate(mem: &GuestMemory, paging: &Paging, gva: u64) -> Result<Translation, WalkError> {
    match paging.mode() {
        PagingMode::Off => Ok(Translation {
            gpa: gva,
            user: false,
            writable: true,
            page_size: PAGE_4K,
        }),
        PagingMode::Bits32 => {
            if gva > u64::from(u32::MAX) {
                return Err(WalkError::NonCanonical { gva });
            }
            walk_32(mem, paging, gva)
        }
        PagingMode::Pae => {
            if gva > u64::from(u32::MAX) {
                return Err(WalkError::NonCanonical { gva });
            }
            walk_64(mem, gva, paging.cr3 & PAE_CR3_MASK, 3, true)
        }
        PagingMode::Level4 => {
            if !is_canonical(gva, 48) {
                return Err(WalkError::NonCanonical { gva });
            }
            walk_64(mem, gva, paging.cr3 & PHYS_ADDR_MASK, 4, false)
        }
        PagingMode::Level5 => {
            if !is_canonical(gva, 57) {
                return Err(WalkError::NonCanonical { gva });
            }
            walk_64(mem, gva, paging.cr3 & PHYS_ADDR_MASK, 5, false)
        }
    }
}

/// The 32-bit two-level walk (4-byte entries).
fn walk_32(mem: &GuestMemory, paging: &Paging, gva: u64) -> Result<Translation, WalkError> {
    let directory = paging.cr3 & PHYS_ADDR_MASK_32;
    let pde = read_entry(mem, gva, directory, (gva >> 22) & 0x3ff, 4)?;
    if pde & PTE_PRESENT == 0 {
        return Err(WalkError::NotMapped { gva, level: 2 });
    }
    let user = pde & PTE_USER != 0;
    let writable = pde & PTE_WRITABLE != 0;
    if pde & PTE_LARGE != 0 && paging.cr4 & CR4_PSE != 0 {
        // Bits 31..=22 give physical bits 31..=22; bits 20..=13 give physical bits 39..=32.
        let base = (pde & 0xffc0_0000) | (((pde >> 13) & 0xff) << 32);
        return Ok(Translation {
            gpa: base | (gva & (PAGE_4M - 1)),
            user,
            writable,
            page_size: PAGE_4M,
        });
    }
    let table = pde & PHYS_ADDR_MASK_32;
    let pte = read_entry(mem, gva, table, (gva >> 12) & 0x3ff, 4)?;
    if pte & PTE_PRESENT == 0 {
        return Err(WalkError::NotMapped { gva, level: 1 });
    }
    Ok(Translation {
        gpa: (pte & PHYS_ADDR_MASK_32) | (gva & (PAGE_4K - 1)),
        user: user && pte & PTE_USER != 0,
        writable: writable && pte & PTE_WRITABLE != 0,
        page_size: PAGE_4K,
    })
}

/// The walk with 8-byte entries: PAE (`pae`, starting at level 3) or long mode (starting at
/// level 4 or 5). Large pages are honoured at level 2 and, in long mode, at level 3.
fn walk_64(
    mem: &GuestMemory,
    gva: u64,
    root: u64,
    top_level: u8,
    pae: bool,
) -> Result<Translation, WalkError> {
    let mut table = root;
    let mut user = true;
    let mut writable = true;
    for level in (1..=top_level).rev() {
        let shift = 12 + 9 * u32::from(level - 1);
        let entry = read_entry(mem, gva, table, (gva >> shift) & 0x1ff, 8)?;
        if entry & PTE_PRESENT == 0 {
            return Err(WalkError::NotMapped { gva, level });
        }
        // PAE page-directory-pointer entries have no R/W or U/S bits.
        let pae_pdpte = pae && level == 3;
        if !pae_pdpte {
            user &= entry & PTE_USER != 0;
            writable &= entry & PTE_WRITABLE != 0;
        }
        let large = entry & PTE_LARGE != 0 && (level == 2 || (level == 3 && !pae));
        if level == 1 || large {
            let page_size = 1u64 << shift;
            let base = entry & PHYS_ADDR_MASK & !(page_size - 1);
            return Ok(Translation {
                gpa: base | (gva & (page_size - 1)),
                user,
                writable,
                page_size,
            });
        }
        table = entry & PHYS_ADDR_MASK;
    }
    // The loop always returns at level 1.
    Err(WalkError::NotMapped { gva, level: 1 })
}

/// Splits `[gva, gva + len)` into pieces that each lie in one guest page and translates
/// them all, checking that every piece is guest RAM. Returns `(gpa, offset, len)` triples,
/// `offset` being the piece's position in the range.
fn translate_range(
    mem: &GuestMemory,
    paging: &Paging,
    gva: u64,
    len: usize,
) -> Result<Vec<(u64, usize, usize)>, AccessError> {
    if len > 0 && gva.checked_add(len as u64 - 1).is_none() {
        return Err(AccessError::Wraps { gva, len });
    }
    let mut pieces = Vec::new();
    let mut done = 0usize;
    while done < len {
        let addr = gva + done as u64;
        let t = translate(mem, paging, addr)?;
        let in_page = t.page_size - (addr & (t.page_size - 1));
        let piece = usize::try_from(in_page).map_or(len - done, |n| n.min(len - done));
        if !mem.check_range(GuestAddress(t.gpa), piece) {
            return Err(AccessError::OutsideRam {
                gva: addr,
                gpa: t.gpa,
            });
        }
        pieces.push((t.gpa, done, piece));
        done += piece;
    }
    Ok(pieces)
}

/// Fills `buf` from guest virtual address `gva` onwards, translating each page.
///
/// Fails without reading when any part of the range is unmapped or not guest RAM; the error
/// names the first such address.
pub fn read_virt(
    mem: &GuestMemory,
    paging: &Paging,
    gva: u64,
    buf: &mut [u8],
) -> Result<(), AccessError> {
    for (gpa, offset, len) in translate_range(mem, paging, gva, buf.len())? {
        mem.read_slice(&mut buf[offset..offset + len], GuestAddress(gpa))
            .map_err(|_| AccessError::OutsideRam {
                gva: gva + offset as u64,
                gpa,
            })?;
    }
    Ok(())
}

/// Writes `data` at guest virtual address `gva` onwards, translating each page.
///
/// Fails without writing anything when any part of the range is unmapped or not guest RAM;
/// the error names the first such address. Page protections are not enforced: a debugger
/// may write read-only pages.
pub fn write_virt(
    mem: &GuestMemory,
    paging: &Paging,
    gva: u64,
    data: &[u8],
) -> Result<(), AccessError> {
    for (gpa, offset, len) in translate_range(mem, paging, gva, data.len())? {
        mem.write_slice(&data[offset..offset + len], GuestAddress(gpa))
            .map_err(|_| AccessError::OutsideRam {
                gva: gva + offset as u64,
                gpa,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: usize = 4 << 20;
    const P: u64 = PTE_PRESENT;
    const W: u64 = PTE_WRITABLE;
    const U: u64 = PTE_USER;
    const PS: u64 = PTE_LARGE;

    const PML5: u64 = 0x6000;
    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;
    const PDPT_HIGH: u64 = 0x5000;

    fn memory() -> GuestMemory {
        GuestMemory::from_ranges(&[(GuestAddress(0), RAM)]).unwrap()
    }

    fn put64(mem: &GuestMemory, table: u64, index: u64, entry: u64) {
        mem.write_obj(entry.to_le_bytes(), GuestAddress(table + index * 8))
            .unwrap();
    }

    fn put32(mem: &GuestMemory, table: u64, index: u64, entry: u32) {
        mem.write_obj(entry.to_le_bytes(), GuestAddress(table + index * 4))
            .unwrap();
    }

    /// Four-level tables:
    /// - 0x40_0000: 4 KiB page at 0x10_0000 (user, writable)
    /// - 0x40_1000: 4 KiB page at 0x30_0000 (supervisor, read-only)
    /// - 0x60_0000: 2 MiB page at 0x20_0000
    /// - 0x4000_0000: 1 GiB page at 0
    /// - 0x8000_0000: 1 GiB page at 1 GiB (outside RAM)
    /// - 0xffff_ffff_8000_0000: 1 GiB page at 0 (through PML4 entry 511)
    fn long_mode_tables(mem: &GuestMemory) {
        put64(mem, PML4, 0, PDPT | P | W | U);
        put64(mem, PML4, 511, PDPT_HIGH | P | W);
        put64(mem, PDPT, 0, PD | P | W | U);
        put64(mem, PDPT, 1, P | W | U | PS);
        put64(mem, PDPT, 2, 0x4000_0000 | P | W | PS);
        put64(mem, PDPT_HIGH, 510, P | W | PS);
        put64(mem, PD, 2, PT | P | W | U);
        put64(mem, PD, 3, 0x20_0000 | P | U | PS);
        put64(mem, PT, 0, 0x10_0000 | P | W | U);
        put64(mem, PT, 1, 0x30_0000 | P);
        put64(mem, PML5, 0, PML4 | P | W | U);
    }

    fn long_mode() -> Paging {
        Paging {
            cr0: CR0_PG | 1,
            cr3: PML4,
            cr4: CR4_PAE,
            efer: EFER_LMA | (1 << 8),
        }
    }

    fn five_level() -> Paging {
        Paging {
            cr3: PML5,
            cr4: CR4_PAE | CR4_LA57,
            ..long_mode()
        }
    }

    #[test]
    fn modes() {
        assert_eq!(Paging::default().mode(), PagingMode::Off);
        assert_eq!(long_mode().mode(), PagingMode::Level4);
        assert_eq!(five_level().mode(), PagingMode::Level5);
        let pae = Paging {
            efer: 0,
            ..long_mode()
        };
        assert_eq!(pae.mode(), PagingMode::Pae);
        let legacy = Paging { cr4: 0, ..pae };
        assert_eq!(legacy.mode(), PagingMode::Bits32);

        let sregs = kvm_bindings::kvm_sregs {
            cr0: 0x8000_0011,
            cr3: 0x1000,
            cr4: 0x20,
            efer: 0x500,
            ..Default::default()
        };
        let p = Paging::from_sregs(&sregs);
        assert_eq!(
            (p.cr0, p.cr3, p.cr4, p.efer),
            (0x8000_0011, 0x1000, 0x20, 0x500)
        );
        assert_eq!(p.mode(), PagingMode::Level4);
    }

    #[test]
    fn four_level_4k_pages() {
        let mem = memory();
        long_mode_tables(&mem);
        let t = translate(&mem, &long_mode(), 0x40_0123).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x10_0123,
                user: true,
                writable: true,
                page_size: 4096
            }
        );
        let t = translate(&mem, &long_mode(), 0x40_1ffc).unwrap();
        assert_eq!(t.gpa, 0x30_0ffc);
        assert!(!t.user);
        assert!(!t.writable);
    }

    #[test]
    fn user_and_writable_are_anded_along_the_walk() {
        let mem = memory();
        long_mode_tables(&mem);
        // The leaf allows user access but the PML4 entry for the top half does not.
        put64(&mem, PDPT_HIGH, 510, P | W | U | PS);
        let t = translate(&mem, &long_mode(), 0xffff_ffff_8000_0000).unwrap();
        assert!(!t.user);
        assert!(t.writable);
        // A read-only directory entry makes its whole range read-only.
        put64(&mem, PD, 2, PT | P | U);
        let t = translate(&mem, &long_mode(), 0x40_0000).unwrap();
        assert!(t.user);
        assert!(!t.writable);
    }

    #[test]
    fn large_pages() {
        let mem = memory();
        long_mode_tables(&mem);
        let t = translate(&mem, &long_mode(), 0x6f_edcb).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x2f_edcb,
                user: true,
                writable: false,
                page_size: 2 << 20
            }
        );
        let t = translate(&mem, &long_mode(), 0x4012_3456).unwrap();
        assert_eq!(t.gpa, 0x12_3456);
        assert_eq!(t.page_size, 1 << 30);
        let t = translate(&mem, &long_mode(), 0xffff_ffff_8000_1000).unwrap();
        assert_eq!(t.gpa, 0x1000);
        assert!(!t.user);
        let t = translate(&mem, &long_mode(), 0x8000_0000).unwrap();
        assert_eq!(t.gpa, 0x4000_0000);
    }

    #[test]
    fn large_page_address_ignores_pat_and_high_bits() {
        let mem = memory();
        // PAT (bit 12), execute-disable (bit 63) and protection-key bits do not reach the
        // physical address.
        put64(&mem, PML4, 0, PDPT | P | W);
        put64(&mem, PDPT, 0, PD | P | W);
        put64(
            &mem,
            PD,
            0,
            (1 << 63) | (0xf << 59) | 0x20_0000 | (1 << 12) | P | W | PS,
        );
        let t = translate(&mem, &long_mode(), 0x1234).unwrap();
        assert_eq!(t.gpa, 0x20_1234);
    }

    #[test]
    fn unmapped_addresses_name_the_level() {
        let mem = memory();
        long_mode_tables(&mem);
        let cases = [
            (0x40_2000u64, 1u8),
            (0x80_0000, 2),
            (0xc000_0000, 3),
            (0x0000_0080_0000_0000, 4),
        ];
        for (gva, level) in cases {
            assert_eq!(
                translate(&mem, &long_mode(), gva),
                Err(WalkError::NotMapped { gva, level }),
                "{gva:#x}"
            );
        }
        let message = WalkError::NotMapped {
            gva: 0x80_0000,
            level: 2,
        }
        .to_string();
        assert_eq!(
            message,
            "guest virtual address 0x800000 is not mapped (no present entry at page-table level 2)"
        );
    }

    #[test]
    fn non_canonical_addresses() {
        let mem = memory();
        long_mode_tables(&mem);
        for gva in [
            0x0000_8000_0000_0000u64,
            0xfff0_0000_0000_0000,
            0x7fff_ffff_ffff_ffff,
        ] {
            assert_eq!(
                translate(&mem, &long_mode(), gva),
                Err(WalkError::NonCanonical { gva })
            );
        }
        // Canonical with five levels, but PML4 entry 256 is not present.
        assert_eq!(
            translate(&mem, &five_level(), 0x0000_8000_0000_0000),
            Err(WalkError::NotMapped {
                gva: 0x0000_8000_0000_0000,
                level: 4
            })
        );
        assert_eq!(
            translate(&mem, &five_level(), 0x0100_0000_0000_0000),
            Err(WalkError::NonCanonical {
                gva: 0x0100_0000_0000_0000
            })
        );
    }

    #[test]
    fn five_levels() {
        let mem = memory();
        long_mode_tables(&mem);
        let t = translate(&mem, &five_level(), 0x40_0123).unwrap();
        assert_eq!(t.gpa, 0x10_0123);
        assert_eq!(
            translate(&mem, &five_level(), 0x0001_0000_0000_0000),
            Err(WalkError::NotMapped {
                gva: 0x0001_0000_0000_0000,
                level: 5
            })
        );
    }

    #[test]
    fn table_outside_ram() {
        let mem = memory();
        let paging = Paging {
            cr3: 0x1000_0000,
            ..long_mode()
        };
        assert_eq!(
            translate(&mem, &paging, 0x1000),
            Err(WalkError::TableOutsideRam {
                gva: 0x1000,
                table_gpa: 0x1000_0000
            })
        );
        // The physical address mask keeps bits 12..=51 of an entry.
        put64(&mem, PML4, 0, (1 << 62) | 0x000f_0000_0000_0000 | P);
        assert_eq!(
            translate(&mem, &long_mode(), 0x1000),
            Err(WalkError::TableOutsideRam {
                gva: 0x1000,
                table_gpa: 0x000f_0000_0000_0000
            })
        );
    }

    #[test]
    fn pae_paging() {
        let mem = memory();
        let pdpt = 0x7020; // 32-byte aligned, not page aligned
        put64(&mem, pdpt, 0, 0x8000 | P);
        put64(&mem, pdpt, 3, 0xa000 | P);
        put64(&mem, 0x8000, 0, 0x9000 | P | W | U);
        put64(&mem, 0x8000, 1, 0x20_0000 | P | PS);
        put64(&mem, 0x9000, 1, 0x10_0000 | P | W | U);
        put64(&mem, 0xa000, 511, 0x4000_0000 | P | W | PS);
        let paging = Paging {
            cr0: CR0_PG | 1,
            cr3: pdpt,
            cr4: CR4_PAE,
            efer: 0,
        };
        let t = translate(&mem, &paging, 0x1abc).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x10_0abc,
                user: true,
                writable: true,
                page_size: 4096
            }
        );
        let t = translate(&mem, &paging, 0x21_0000).unwrap();
        assert_eq!(t.gpa, 0x21_0000);
        assert_eq!(t.page_size, 2 << 20);
        assert!(!t.user && !t.writable);
        let t = translate(&mem, &paging, 0xffe0_0010).unwrap();
        assert_eq!(t.gpa, 0x4000_0010);
        assert_eq!(
            translate(&mem, &paging, 0x4000_0000),
            Err(WalkError::NotMapped {
                gva: 0x4000_0000,
                level: 3
            })
        );
        assert_eq!(
            translate(&mem, &paging, 0x1_0000_0000),
            Err(WalkError::NonCanonical { gva: 0x1_0000_0000 })
        );
    }

    #[test]
    fn legacy_32bit_paging() {
        let mem = memory();
        let pd = 0xa000;
        let pt = 0xb000;
        put32(&mem, pd, 0, (pt as u32) | 0x7);
        put32(&mem, pd, 1, 0x0040_0000 | 0x83);
        // 4 MiB page at 0x1_0080_0000 through the PSE-36 high bits (bits 20..=13).
        put32(&mem, pd, 2, 0x0080_0000 | (1 << 13) | 0x83);
        put32(&mem, pt, 2, 0x0030_0000 | 0x5);
        let paging = Paging {
            cr0: CR0_PG | 1,
            cr3: pd,
            cr4: CR4_PSE,
            efer: 0,
        };
        let t = translate(&mem, &paging, 0x2468).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x30_0468,
                user: true,
                writable: false,
                page_size: 4096
            }
        );
        let t = translate(&mem, &paging, 0x0055_5555).unwrap();
        assert_eq!(t.gpa, 0x0055_5555);
        assert_eq!(t.page_size, 4 << 20);
        assert!(!t.user && t.writable);
        let t = translate(&mem, &paging, 0x0080_0010).unwrap();
        assert_eq!(t.gpa, 0x1_0080_0010);
        assert_eq!(
            translate(&mem, &paging, 0x3000),
            Err(WalkError::NotMapped {
                gva: 0x3000,
                level: 1
            })
        );
        assert_eq!(
            translate(&mem, &paging, 0xc000_0000),
            Err(WalkError::NotMapped {
                gva: 0xc000_0000,
                level: 2
            })
        );
        // Without CR4.PSE the large-page bit is ignored and the entry points to a table
        // (at 0x40_0000, outside RAM here).
        let no_pse = Paging { cr4: 0, ..paging };
        assert_eq!(
            translate(&mem, &no_pse, 0x0040_0000),
            Err(WalkError::TableOutsideRam {
                gva: 0x0040_0000,
                table_gpa: 0x0040_0000
            })
        );
    }

    #[test]
    fn paging_off_is_identity() {
        let mem = memory();
        let paging = Paging::default();
        let t = translate(&mem, &paging, 0x1234_5678).unwrap();
        assert_eq!(
            t,
            Translation {
                gpa: 0x1234_5678,
                user: false,
                writable: true,
                page_size: 4096
            }
        );
        write_virt(&mem, &paging, 0xff0, &[7u8; 32]).unwrap();
        let mut buf = [0u8; 32];
        mem.read_slice(&mut buf, GuestAddress(0xff0)).unwrap();
        assert_eq!(buf, [7u8; 32]);
        let mut back = [0u8; 32];
        read_virt(&mem, &paging, 0xff0, &mut back).unwrap();
        assert_eq!(back, buf);
    }

    #[test]
    fn cross_page_read_and_write() {
        let mem = memory();
        long_mode_tables(&mem);
        let paging = long_mode();
        let data: Vec<u8> = (0..32).collect();
        write_virt(&mem, &paging, 0x40_0ff0, &data).unwrap();
        let mut first = [0u8; 16];
        let mut second = [0u8; 16];
        mem.read_slice(&mut first, GuestAddress(0x10_0ff0)).unwrap();
        mem.read_slice(&mut second, GuestAddress(0x30_0000))
            .unwrap();
        assert_eq!(&first[..], &data[..16]);
        assert_eq!(&second[..], &data[16..]);
        let mut back = vec![0u8; 32];
        read_virt(&mem, &paging, 0x40_0ff0, &mut back).unwrap();
        assert_eq!(back, data);
        // Empty accesses succeed anywhere.
        read_virt(&mem, &paging, 0x0000_8000_0000_0000, &mut []).unwrap();
    }

    #[test]
    fn large_page_access() {
        let mem = memory();
        long_mode_tables(&mem);
        let paging = long_mode();
        // Through the 1 GiB page at 0, across a 4 KiB boundary in one piece.
        write_virt(&mem, &paging, 0x4011_0ffe, &[1, 2, 3, 4]).unwrap();
        let mut buf = [0u8; 4];
        read_virt(&mem, &Paging::default(), 0x11_0ffe, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        // Through the 2 MiB page at 0x20_0000.
        write_virt(&mem, &paging, 0x6f_fffe, &[5, 6, 7, 8]).unwrap();
        mem.read_slice(&mut buf, GuestAddress(0x2f_fffe)).unwrap();
        assert_eq!(buf, [5, 6, 7, 8]);
        read_virt(&mem, &paging, 0x6f_fffe, &mut buf).unwrap();
        assert_eq!(buf, [5, 6, 7, 8]);
    }

    #[test]
    fn failed_accesses_name_the_first_bad_address() {
        let mem = memory();
        long_mode_tables(&mem);
        let paging = long_mode();
        // 0x40_1000 is mapped, 0x40_2000 is not: nothing is written.
        let before = {
            let mut b = [0u8; 16];
            mem.read_slice(&mut b, GuestAddress(0x30_0ff8)).unwrap();
            b
        };
        assert_eq!(
            write_virt(&mem, &paging, 0x40_1ff8, &[0xaa; 16]),
            Err(AccessError::Walk(WalkError::NotMapped {
                gva: 0x40_2000,
                level: 1
            }))
        );
        let mut after = [0u8; 16];
        mem.read_slice(&mut after, GuestAddress(0x30_0ff8)).unwrap();
        assert_eq!(after, before);

        let mut buf = [0u8; 8];
        assert_eq!(
            read_virt(&mem, &paging, 0x8000_0000, &mut buf),
            Err(AccessError::OutsideRam {
                gva: 0x8000_0000,
                gpa: 0x4000_0000
            })
        );
        assert_eq!(
            read_virt(&mem, &Paging::default(), u64::MAX - 3, &mut buf),
            Err(AccessError::Wraps {
                gva: u64::MAX - 3,
                len: 8
            })
        );
        // The last bytes of the address space do not wrap, but are not RAM here.
        assert_eq!(
            read_virt(&mem, &Paging::default(), u64::MAX - 7, &mut buf),
            Err(AccessError::OutsideRam {
                gva: u64::MAX - 7,
                gpa: u64::MAX - 7
            })
        );
    }
}
