//! KVM state: guest memory, the VM and its vCPUs.

pub mod exit_report;
pub mod memory;
pub mod vcpu;
pub mod vcpu_control;
pub mod vcpu_registers;
pub mod vcpu_state;
pub mod vm;
pub mod vm_clock;
pub mod vm_state;
