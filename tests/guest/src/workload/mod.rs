//! Workloads, chosen with `workload=` on the command line.

mod blk;
mod blk_bench;
mod blk_rate;
mod blk_resize;
mod blk_rounds;
mod console;
mod cpl0_popcnt;
mod dirty;
mod fault;
mod kv;
mod net_echo;
mod ticks;

use crate::cmdline::Cmdline;
use crate::pvh::BootInfo;
use crate::virtio::Slot;

/// What a workload gets to work with.
pub struct Env<'a> {
    pub cmdline: Cmdline,
    pub boot: &'a BootInfo,
    pub slots: &'a [Option<Slot>],
}

impl Env<'_> {
    /// Populated slots holding devices of type `device_id`, in discovery order.
    pub fn devices(&self, device_id: u32) -> impl Iterator<Item = &Slot> {
        self.slots
            .iter()
            .flatten()
            .filter(move |s| s.device_id == device_id)
    }
}

/// Run the workload named on the command line (default `hello`).
pub fn run(env: &Env) {
    match env.cmdline.get("workload").unwrap_or(b"hello") {
        b"hello" => {}
        b"blk" if env.cmdline.u64("blk.bench", 0) != 0 => blk_bench::run(env),
        b"blk" => blk::run(env),
        b"net-echo" => net_echo::run(env),
        b"dirty" => dirty::run(env),
        b"ticks" => ticks::run(env),
        b"fault" => fault::run(env),
        b"cpl0-popcnt" => cpl0_popcnt::run(env),
        b"console" => console::run(env),
        b"blk-resize" => blk_resize::run(env),
        b"blk-rate" => blk_rate::run(env),
        b"blk-rounds" => blk_rounds::run(env),
        b"kv" => kv::run(env),
        other => crate::fatal!("unknown workload {}", crate::cmdline::Bytes(other)),
    }
}
