//! Saving and restoring the VM-wide in-kernel state: both PICs, the IOAPIC, the PIT and the
//! KVM clock.

use kvm_bindings::{
    kvm_clock_data, kvm_irqchip, kvm_pit_state2, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::VmFd;
use serde::{Deserialize, Serialize};

/// The VM's in-kernel device state.
#[derive(Clone, Serialize, Deserialize)]
pub struct VmState {
    /// Master 8259.
    pub pic_master: kvm_irqchip,
    /// Slave 8259.
    pub pic_slave: kvm_irqchip,
    /// IOAPIC.
    pub ioapic: kvm_irqchip,
    /// PIT (i8254).
    pub pit: kvm_pit_state2,
    /// kvmclock.
    pub clock: kvm_clock_data,
}

impl std::fmt::Debug for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VmState(clock {})", self.clock.clock)
    }
}

/// A VM state operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("VM state: {what}: {source}")]
pub struct VmStateError {
    /// The operation.
    pub what: &'static str,
    /// The errno.
    pub source: kvm_ioctls::Error,
}

fn chip(id: u32) -> kvm_irqchip {
    kvm_irqchip {
        chip_id: id,
        ..Default::default()
    }
}

impl VmState {
    /// Reads the state (vCPUs paused).
    pub fn save(vm: &VmFd) -> Result<Self, VmStateError> {
        let get = |id: u32, what| {
            let mut c = chip(id);
            vm.get_irqchip(&mut c)
                .map(|()| c)
                .map_err(|source| VmStateError { what, source })
        };
        let mut clock = vm.get_clock().map_err(|source| VmStateError {
            what: "KVM_GET_CLOCK",
            source,
        })?;
        // The flags KVM returns are not all accepted by KVM_SET_CLOCK.
        clock.flags = 0;
        Ok(VmState {
            pic_master: get(KVM_IRQCHIP_PIC_MASTER, "KVM_GET_IRQCHIP (PIC master)")?,
            pic_slave: get(KVM_IRQCHIP_PIC_SLAVE, "KVM_GET_IRQCHIP (PIC slave)")?,
            ioapic: get(KVM_IRQCHIP_IOAPIC, "KVM_GET_IRQCHIP (IOAPIC)")?,
            pit: vm.get_pit2().map_err(|source| VmStateError {
                what: "KVM_GET_PIT2",
                source,
            })?,
            clock,
        })
    }

    /// Writes the state into a new VM (irqchip and PIT created, before vCPUs run).
    pub fn restore(&self, vm: &VmFd) -> Result<(), VmStateError> {
        vm.set_pit2(&self.pit).map_err(|source| VmStateError {
            what: "KVM_SET_PIT2",
            source,
        })?;
        vm.set_clock(&self.clock).map_err(|source| VmStateError {
            what: "KVM_SET_CLOCK",
            source,
        })?;
        for (c, what) in [
            (&self.pic_master, "KVM_SET_IRQCHIP (PIC master)"),
            (&self.pic_slave, "KVM_SET_IRQCHIP (PIC slave)"),
            (&self.ioapic, "KVM_SET_IRQCHIP (IOAPIC)"),
        ] {
            vm.set_irqchip(c)
                .map_err(|source| VmStateError { what, source })?;
        }
        Ok(())
    }
}
