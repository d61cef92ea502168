//! The gdb stub: the GDB remote serial protocol over a Unix or TCP socket, one gdb thread
//! per vCPU, with `monitor` commands that drive snapshots and replay.

pub mod arch;
pub mod debugregs;
pub mod regs;
pub mod walk;
