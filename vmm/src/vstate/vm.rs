//! The KVM VM: memory slots, in-kernel irqchip and PIT, irqfd and ioeventfd wiring.

use std::sync::Arc;

use devices::GuestMemory;
use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{IoEventAddress, Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::layout;

/// Why the VM could not be created or wired.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// /dev/kvm could not be opened.
    #[error("cannot open /dev/kvm: {0} (is KVM available and are you allowed to use it?)")]
    OpenKvm(kvm_ioctls::Error),
    /// The host KVM is too old.
    #[error("KVM API version {0} is not supported (need 12)")]
    ApiVersion(i32),
    /// A KVM ioctl failed.
    #[error("{what} failed: {source}")]
    Ioctl {
        /// Which operation.
        what: &'static str,
        /// The errno.
        source: kvm_ioctls::Error,
    },
}

fn ioctl<T>(what: &'static str, r: Result<T, kvm_ioctls::Error>) -> Result<T, VmError> {
    r.map_err(|source| VmError::Ioctl { what, source })
}

/// Whether this host's `/dev/kvm` is PVM (pagetable-based KVM without hardware virtualization),
/// where guest kernel-mode code is emulated and some instructions cannot be.
pub fn host_is_pvm() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

/// A KVM VM with its memory registered.
pub struct Vm {
    kvm: Kvm,
    fd: Arc<VmFd>,
}

impl Vm {
    /// Creates the VM, registers `mem` as memory slots, and adds the in-kernel irqchip
    /// (PIC + IOAPIC + LAPICs) and PIT.
    pub fn new(mem: &GuestMemory) -> Result<Self, VmError> {
        let kvm = Kvm::new().map_err(VmError::OpenKvm)?;
        let version = kvm.get_api_version();
        if version != 12 {
            return Err(VmError::ApiVersion(version));
        }
        let fd = ioctl("KVM_CREATE_VM", kvm.create_vm())?;
        register_memory(&fd, mem, false)?;
        // Needed by VMX hosts; other hosts may refuse, which is harmless.
        if let Err(e) = fd.set_tss_address(layout::KVM_TSS_ADDRESS as usize) {
            log::debug!("KVM_SET_TSS_ADDR: {e}");
        }
        if let Err(e) = fd.set_identity_map_address(layout::KVM_IDENTITY_MAP_ADDRESS) {
            log::debug!("KVM_SET_IDENTITY_MAP_ADDR: {e}");
        }
        ioctl("KVM_CREATE_IRQCHIP", fd.create_irq_chip())?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        ioctl("KVM_CREATE_PIT2", fd.create_pit2(pit))?;
        Ok(Vm {
            kvm,
            fd: Arc::new(fd),
        })
    }

    /// The `/dev/kvm` handle.
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// The VM file descriptor.
    pub fn fd(&self) -> &Arc<VmFd> {
        &self.fd
    }

    /// Turns KVM's dirty-page logging of guest memory on or off (re-registers the slots).
    pub fn set_dirty_logging(&self, mem: &GuestMemory, on: bool) -> Result<(), VmError> {
        register_memory(&self.fd, mem, on)
    }

    /// Pages the guest wrote in memory slot `slot` (of `len` bytes) since the last call,
    /// as KVM's bitmap words (bit n = page n); re-arms tracking.
    pub fn dirty_log(&self, slot: u32, len: usize) -> Result<Vec<u64>, VmError> {
        ioctl("KVM_GET_DIRTY_LOG", self.fd.get_dirty_log(slot, len))
    }

    /// Routes pulses on `evt` to interrupt line `gsi`.
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<(), VmError> {
        ioctl("KVM_IRQFD", self.fd.register_irqfd(evt, gsi))
    }

    /// Signals `evt` in the kernel when the guest writes `datamatch` (32 bits) to MMIO `addr`.
    pub fn register_mmio_ioevent(
        &self,
        evt: &EventFd,
        addr: u64,
        datamatch: u32,
    ) -> Result<(), VmError> {
        ioctl(
            "KVM_IOEVENTFD",
            self.fd
                .register_ioevent(evt, &IoEventAddress::Mmio(addr), datamatch),
        )
    }
}

/// Registers every region of `mem` as a KVM memory slot (slot n = region n).
fn register_memory(fd: &VmFd, mem: &GuestMemory, log_dirty: bool) -> Result<(), VmError> {
    let flags = if log_dirty {
        kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES
    } else {
        0
    };
    for (slot, region) in mem.iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|_| VmError::Ioctl {
                what: "mapping guest memory",
                source: kvm_ioctls::Error::new(libc::EFAULT),
            })?;
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
            flags,
        };
        // SAFETY: the region is a live mmap owned by `mem`, which outlives the VM (the VM
        // owner keeps both); KVM only accesses it while the VM exists.
        ioctl("KVM_SET_USER_MEMORY_REGION", unsafe {
            fd.set_user_memory_region(r)
        })?;
    }
    Ok(())
}
