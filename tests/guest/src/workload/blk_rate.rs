//! `workload=blk-rate`: `blk.ops` 4 KiB requests (`blk.rw=read` or `write`) at
//! consecutive offsets from `blk.sector` on the first disk, timed with the TSC, so
//! the host can compare the achieved rate with an I/O limit.

use super::Env;
use crate::timer::tsc_khz;
use crate::virtio::blk::{Blk, SECTOR, S_OK};
use crate::virtio::DEVICE_BLK;
use crate::{dma, println};

const REQUEST: usize = 4096;

pub fn run(env: &Env) {
    let Some(slot) = env.devices(DEVICE_BLK).next() else {
        crate::fatal!("blk-rate: no virtio-blk device");
    };
    let ops = env.cmdline.u64("blk.ops", 200);
    let first = env.cmdline.u64("blk.sector", 2048);
    let write = env.cmdline.get("blk.rw") == Some(b"write");
    let mut dev = Blk::new(slot);
    let per_op = REQUEST as u64 / SECTOR;
    if first + ops * per_op > dev.capacity() {
        crate::fatal!(
            "blk-rate: {} requests from sector {} do not fit",
            ops,
            first
        );
    }
    let buf = dma::alloc(REQUEST, 4096);
    buf.fill(0x5a);
    println!("tsc: khz={}", tsc_khz());
    let start = crate::io::rdtsc();
    for i in 0..ops {
        let sector = first + i * per_op;
        let status = if write {
            dev.write(sector, buf)
        } else {
            dev.read(sector, buf)
        };
        if status != S_OK {
            crate::fatal!("blk-rate: request {} failed status={}", i, status);
        }
    }
    let cycles = crate::io::rdtsc().wrapping_sub(start);
    println!(
        "blk-rate: ops={} bytes={} cycles={}",
        ops,
        ops * REQUEST as u64,
        cycles
    );
}
