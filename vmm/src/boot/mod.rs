//! Loading a kernel and preparing what its entry point expects.
//!
//! Only PVH (an ELF with a Xen PVH entry note) exists today; the Linux boot protocol
//! (bzImage, zero page) will be another [`BootProtocol`] variant with its own module.

use std::path::PathBuf;

use kvm_bindings::{kvm_regs, kvm_sregs};

pub mod pvh;

/// Why the kernel could not be loaded or configured.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel or initrd file could not be opened or read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// "kernel image" or "initrd".
        what: &'static str,
        /// Path given by the user.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The ELF loader rejected the image.
    #[error("cannot load kernel image {path}: {source}")]
    Load {
        /// Path given by the user.
        path: PathBuf,
        /// The loader's error.
        source: linux_loader::loader::Error,
    },
    /// The ELF has no PVH entry note.
    #[error("kernel image {0} has no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); only PVH ELF kernels can be booted")]
    NoPvhEntry(PathBuf),
    /// The command line is too long or invalid.
    #[error("kernel command line: {0}")]
    Cmdline(String),
    /// The initrd does not fit in guest memory.
    #[error("initrd {path} ({size} bytes) does not fit in guest memory below {limit:#x}")]
    InitrdTooBig {
        /// Path given by the user.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// Highest address available for it.
        limit: u64,
    },
    /// Writing boot structures into guest memory failed.
    #[error("cannot write boot information into guest memory: {0}")]
    Setup(String),
}

/// The entry convention of a loaded kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// Xen PVH: 32-bit protected mode at `entry`, EBX = `hvm_start_info`.
    Pvh {
        /// Physical entry address from the ELF note.
        entry: u64,
    },
}

/// Register values the boot vCPU starts with.
#[derive(Debug, Clone, Copy)]
pub struct BootRegs {
    /// General registers.
    pub regs: kvm_regs,
    /// Adjusts special registers (read from KVM first so that defaults are kept).
    pub set_sregs: fn(&mut kvm_sregs),
}
