//! The VM clock as the recorder sees it.

use std::sync::Arc;

use crate::vstate::vcpu::VcpuControl;

/// VM time and guest progress of a running VM (see [`crate::vstate::vm_clock`]).
pub struct VmClockSource(pub Arc<VcpuControl>);

impl replay::Clock for VmClockSource {
    fn vm_time_ns(&self) -> u64 {
        self.0.clock.now_ns()
    }

    fn progress(&self) -> u64 {
        self.0.clock.progress()
    }
}
