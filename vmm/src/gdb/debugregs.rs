//! x86 debug registers for hardware breakpoints and watchpoints: allocation of the four
//! address registers DR0..DR3, the DR7 encoding, the `KVM_SET_GUEST_DEBUG` argument, and
//! decoding DR6 after a debug exit.

use kvm_bindings::{
    kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP,
    KVM_GUESTDBG_USE_SW_BP,
};

/// Number of address debug registers (DR0..DR3).
pub const SLOT_COUNT: usize = 4;

/// DR6 bits B0..B3: debug register `i` matched.
pub const DR6_B_MASK: u64 = 0xf;
/// DR6 BS: the debug exception came from single-stepping (RFLAGS.TF).
pub const DR6_BS: u64 = 1 << 14;

/// DR7 LE: local exact breakpoint enable.
pub const DR7_LE: u64 = 1 << 8;
/// DR7 GE: global exact breakpoint enable.
pub const DR7_GE: u64 = 1 << 9;

/// The kind of access a debug register traps.
///
/// x86 cannot trap reads alone; a read watchpoint has to use [`Access::ReadWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Instruction fetch (a hardware breakpoint).
    Execute,
    /// Data writes.
    Write,
    /// Data reads and writes.
    ReadWrite,
}

impl Access {
    /// The two-bit R/W field of DR7.
    fn rw_bits(self) -> u64 {
        match self {
            Access::Execute => 0b00,
            Access::Write => 0b01,
            Access::ReadWrite => 0b11,
        }
    }
}

/// One hardware breakpoint or watchpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The guest virtual address watched.
    pub addr: u64,
    /// The access that triggers it.
    pub access: Access,
    /// The number of bytes watched: 1, 2, 4 or 8, with `addr` aligned to it. Ignored (taken
    /// as 1) for [`Access::Execute`].
    pub len: u64,
}

impl Slot {
    /// The slot as stored: execute breakpoints always have length 1.
    fn normalized(self) -> Slot {
        match self.access {
            Access::Execute => Slot { len: 1, ..self },
            Access::Write | Access::ReadWrite => self,
        }
    }

    /// The two-bit LEN field of DR7.
    fn len_bits(self) -> u64 {
        match (self.access, self.len) {
            (Access::Execute, _) | (_, 1) => 0b00,
            (_, 2) => 0b01,
            (_, 8) => 0b10,
            _ => 0b11,
        }
    }
}

/// Why a hardware breakpoint or watchpoint could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlotError {
    /// All four debug registers are in use.
    #[error("all {SLOT_COUNT} hardware debug registers are in use")]
    NoFreeSlot,
    /// Watchpoints cover 1, 2, 4 or 8 bytes.
    #[error("a hardware watchpoint covers 1, 2, 4 or 8 bytes, not {len}")]
    BadLength {
        /// The length asked for.
        len: u64,
    },
    /// A watchpoint's address must be a multiple of its length.
    #[error(
        "a hardware watchpoint of {len} bytes needs an address aligned to {len}, not {addr:#x}"
    )]
    Misaligned {
        /// The address asked for.
        addr: u64,
        /// The length asked for.
        len: u64,
    },
}

/// The contents of the four address debug registers.
///
/// Adding a slot identical to one already present returns that slot's index without
/// taking another register; one [`DebugSlots::remove`] then frees it. (gdb inserts each
/// breakpoint or watchpoint location once, so no reference count is kept.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebugSlots {
    slots: [Option<Slot>; SLOT_COUNT],
}

impl DebugSlots {
    /// Places `slot` in a free debug register and returns its index (0..=3).
    pub fn add(&mut self, slot: Slot) -> Result<usize, SlotError> {
        let slot = slot.normalized();
        if slot.access != Access::Execute {
            if !matches!(slot.len, 1 | 2 | 4 | 8) {
                return Err(SlotError::BadLength { len: slot.len });
            }
            if !slot.addr.is_multiple_of(slot.len) {
                return Err(SlotError::Misaligned {
                    addr: slot.addr,
                    len: slot.len,
                });
            }
        }
        if let Some(index) = self.slots.iter().position(|s| *s == Some(slot)) {
            return Ok(index);
        }
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(SlotError::NoFreeSlot)?;
        self.slots[index] = Some(slot);
        Ok(index)
    }

    /// Frees the debug register holding `slot`; returns whether one did.
    pub fn remove(&mut self, slot: &Slot) -> bool {
        let slot = slot.normalized();
        match self.slots.iter_mut().find(|s| **s == Some(slot)) {
            Some(entry) => {
                *entry = None;
                true
            }
            None => false,
        }
    }

    /// Whether no debug register is in use.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The debug registers in use, with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Slot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
    }

    /// The DR7 value enabling the slots in use: local and global enables, R/W and LEN fields
    /// per slot, plus LE and GE when any slot is in use.
    pub fn dr7(&self) -> u64 {
        let mut dr7 = 0;
        for (i, slot) in self.iter() {
            dr7 |= 0b11 << (2 * i);
            dr7 |= slot.access.rw_bits() << (16 + 4 * i);
            dr7 |= slot.len_bits() << (18 + 4 * i);
        }
        if dr7 != 0 {
            dr7 |= DR7_LE | DR7_GE;
        }
        dr7
    }

    /// The `KVM_SET_GUEST_DEBUG` argument for these slots, with single-stepping and
    /// software-breakpoint interception as asked. When nothing is enabled the control word
    /// is 0, which turns guest debugging off.
    pub fn guest_debug(&self, single_step: bool, software_breakpoints: bool) -> kvm_guest_debug {
        let mut debug = kvm_guest_debug::default();
        if !self.is_empty() {
            debug.control |= KVM_GUESTDBG_USE_HW_BP;
            for (i, slot) in self.iter() {
                debug.arch.debugreg[i] = slot.addr;
            }
            debug.arch.debugreg[7] = self.dr7();
        }
        if single_step {
            debug.control |= KVM_GUESTDBG_SINGLESTEP;
        }
        if software_breakpoints {
            debug.control |= KVM_GUESTDBG_USE_SW_BP;
        }
        if debug.control != 0 {
            debug.control |= KVM_GUESTDBG_ENABLE;
        }
        debug
    }

    /// The slot that triggered a debug exception, from the DR6 value the exit reported: the
    /// lowest of B0..B3 that is set and names a slot in use.
    pub fn hit(&self, dr6: u64) -> Option<(usize, Slot)> {
        self.iter().find(|(i, _)| dr6 & DR6_B_MASK & (1 << i) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(addr: u64, access: Access, len: u64) -> Slot {
        Slot { addr, access, len }
    }

    fn single(slot: Slot) -> u64 {
        let mut slots = DebugSlots::default();
        assert_eq!(slots.add(slot), Ok(0));
        slots.dr7()
    }

    #[test]
    fn dr7_encodings() {
        let enables = 0b11 | DR7_LE | DR7_GE;
        assert_eq!(single(watch(0x1234, Access::Execute, 1)), enables);
        // Execute breakpoints take any length as 1.
        assert_eq!(single(watch(0x1235, Access::Execute, 3)), enables);
        let cases = [(1, 0b00), (2, 0b01), (4, 0b11), (8, 0b10)];
        for (len, len_bits) in cases {
            assert_eq!(
                single(watch(0x1000, Access::Write, len)),
                enables | (0b01 << 16) | (len_bits << 18),
                "write {len}"
            );
            assert_eq!(
                single(watch(0x1000, Access::ReadWrite, len)),
                enables | (0b11 << 16) | (len_bits << 18),
                "read/write {len}"
            );
        }
        assert_eq!(DebugSlots::default().dr7(), 0);
    }

    #[test]
    fn dr7_fields_per_slot() {
        let mut slots = DebugSlots::default();
        assert_eq!(slots.add(watch(0x1000, Access::Execute, 1)), Ok(0));
        assert_eq!(slots.add(watch(0x2000, Access::Write, 2)), Ok(1));
        assert_eq!(slots.add(watch(0x3000, Access::ReadWrite, 8)), Ok(2));
        assert_eq!(slots.add(watch(0x4000, Access::Write, 4)), Ok(3));
        let expected = 0xff
            | DR7_LE
            | DR7_GE
            | (0b01 << 20)
            | (0b01 << 22)
            | (0b11 << 24)
            | (0b10 << 26)
            | (0b01 << 28)
            | (0b11 << 30);
        assert_eq!(slots.dr7(), expected);

        assert!(slots.remove(&watch(0x2000, Access::Write, 2)));
        assert_eq!(slots.dr7(), expected & !(0b1100 | (0xf << 20)));
    }

    #[test]
    fn length_and_alignment_errors() {
        let mut slots = DebugSlots::default();
        for len in [0, 3, 5, 16] {
            assert_eq!(
                slots.add(watch(0x1000, Access::Write, len)),
                Err(SlotError::BadLength { len })
            );
        }
        assert_eq!(
            slots.add(watch(0x1002, Access::ReadWrite, 4)),
            Err(SlotError::Misaligned {
                addr: 0x1002,
                len: 4
            })
        );
        assert_eq!(
            slots.add(watch(0x1004, Access::Write, 8)),
            Err(SlotError::Misaligned {
                addr: 0x1004,
                len: 8
            })
        );
        assert_eq!(slots.add(watch(0x1003, Access::Execute, 8)), Ok(0));
        assert_eq!(
            SlotError::Misaligned {
                addr: 0x1002,
                len: 4
            }
            .to_string(),
            "a hardware watchpoint of 4 bytes needs an address aligned to 4, not 0x1002"
        );
    }

    #[test]
    fn full_set_and_reuse() {
        let mut slots = DebugSlots::default();
        assert!(slots.is_empty());
        for i in 0..4u64 {
            assert_eq!(
                slots.add(watch(0x1000 * i, Access::Execute, 1)),
                Ok(i as usize)
            );
        }
        assert_eq!(
            slots.add(watch(0x9000, Access::Write, 4)),
            Err(SlotError::NoFreeSlot)
        );
        // An identical slot shares the register already holding it.
        assert_eq!(slots.add(watch(0x2000, Access::Execute, 1)), Ok(2));
        assert!(slots.remove(&watch(0x2000, Access::Execute, 1)));
        assert!(!slots.remove(&watch(0x2000, Access::Execute, 1)));
        assert_eq!(slots.add(watch(0x9000, Access::Write, 4)), Ok(2));
        assert_eq!(slots.iter().count(), 4);
        // Same address, different access: a different slot.
        assert!(!slots.remove(&watch(0x9000, Access::ReadWrite, 4)));
        for (_, slot) in slots.clone().iter() {
            assert!(slots.remove(&slot));
        }
        assert!(slots.is_empty());
    }

    #[test]
    fn hit_decoding() {
        let mut slots = DebugSlots::default();
        let a = watch(0x1000, Access::Execute, 1);
        let b = watch(0x2000, Access::Write, 8);
        slots.add(a).unwrap();
        slots.add(b).unwrap();
        assert_eq!(slots.hit(0), None);
        assert_eq!(slots.hit(DR6_BS), None);
        assert_eq!(slots.hit(0b01), Some((0, a)));
        assert_eq!(slots.hit(0b10 | DR6_BS), Some((1, b)));
        assert_eq!(slots.hit(0b11), Some((0, a)));
        // B2 and B3 name no slot in use.
        assert_eq!(slots.hit(0b1100), None);
        assert_eq!(slots.hit(0b1110), Some((1, b)));
        slots.remove(&a);
        assert_eq!(slots.hit(0b11), Some((1, b)));
    }

    #[test]
    fn guest_debug_control() {
        let mut slots = DebugSlots::default();
        let off = slots.guest_debug(false, false);
        assert_eq!(off.control, 0);
        assert_eq!(off.arch.debugreg, [0; 8]);
        assert_eq!(
            slots.guest_debug(true, false).control,
            KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP
        );
        assert_eq!(
            slots.guest_debug(false, true).control,
            KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP
        );

        slots
            .add(watch(0xffff_ffff_8100_0000, Access::Execute, 1))
            .unwrap();
        slots.add(watch(0x7000, Access::ReadWrite, 4)).unwrap();
        let debug = slots.guest_debug(false, false);
        assert_eq!(debug.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP);
        assert_eq!(debug.arch.debugreg[0], 0xffff_ffff_8100_0000);
        assert_eq!(debug.arch.debugreg[1], 0x7000);
        assert_eq!(debug.arch.debugreg[2], 0);
        assert_eq!(debug.arch.debugreg[7], slots.dr7());
        let all = slots.guest_debug(true, true);
        assert_eq!(
            all.control,
            KVM_GUESTDBG_ENABLE
                | KVM_GUESTDBG_USE_HW_BP
                | KVM_GUESTDBG_SINGLESTEP
                | KVM_GUESTDBG_USE_SW_BP
        );
    }
}
