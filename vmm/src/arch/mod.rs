//! x86-64 specifics: the guest physical layout, CPUID, MSRs and boot-time registers.

pub mod cpuid;
pub mod layout;
pub mod msr;
pub mod regs;
