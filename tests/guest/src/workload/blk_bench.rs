//! `workload=blk blk.bench=1`: queue-depth-1 throughput of the first virtio-blk
//! device: sequential 128 KiB writes and reads, then random 4 KiB writes and reads.

use super::Env;
use crate::io::rdtsc;
use crate::virtio::blk::{Blk, SECTOR, S_OK};
use crate::virtio::DEVICE_BLK;
use crate::{dma, pattern, println, timer};

const SEQ_CHUNK: u64 = 128 << 10;
const RAND_BLOCK: u64 = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Read,
    Write,
}

pub fn run(env: &Env) {
    let first = env.cmdline.u64("blk.sector", 2048);
    let mib = env.cmdline.u64("blk.bench_mib", 32);
    let ops = env.cmdline.u64("blk.bench_ops", 2000);
    let seed = env.cmdline.u64("seed", 1);
    let Some(slot) = env.devices(DEVICE_BLK).next() else {
        crate::fatal!("blk bench: no virtio-blk device");
    };
    let mut dev = Blk::new(slot);
    let region = mib << 20;
    if region < SEQ_CHUNK || first.saturating_add(region / SECTOR) > dev.capacity() {
        crate::fatal!(
            "blk bench: region {}+{} MiB does not fit the device",
            first,
            mib
        );
    }
    if dev.read_only() {
        crate::fatal!("blk bench: device is read-only");
    }
    let buf = dma::alloc(SEQ_CHUNK as usize, 4096);
    pattern::fill(seed, 0, buf);
    println!("tsc: khz={}", timer::tsc_khz());

    for (name, op) in [("seq-write", Op::Write), ("seq-read", Op::Read)] {
        let start = rdtsc();
        let mut offset = 0;
        while offset < region {
            io(
                &mut dev,
                op,
                first + offset / SECTOR,
                &mut buf[..SEQ_CHUNK as usize],
            );
            offset += SEQ_CHUNK;
        }
        report(name, region, region / SEQ_CHUNK, rdtsc() - start);
    }

    let blocks = region / RAND_BLOCK;
    for (name, op) in [("rand-write", Op::Write), ("rand-read", Op::Read)] {
        let mut lcg = seed;
        let start = rdtsc();
        for _ in 0..ops {
            lcg = lcg
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let block = (lcg >> 33) % blocks;
            io(
                &mut dev,
                op,
                first + block * RAND_BLOCK / SECTOR,
                &mut buf[..RAND_BLOCK as usize],
            );
        }
        report(name, ops * RAND_BLOCK, ops, rdtsc() - start);
    }
}

fn io(dev: &mut Blk, op: Op, sector: u64, buf: &mut [u8]) {
    let status = match op {
        Op::Read => dev.read(sector, buf),
        Op::Write => dev.write(sector, buf),
    };
    if status != S_OK {
        crate::fatal!(
            "blk bench: request at sector {} failed status={}",
            sector,
            status
        );
    }
}

fn report(name: &str, bytes: u64, ops: u64, cycles: u64) {
    println!(
        "bench: blk {} bytes={} ops={} cycles={}",
        name, bytes, ops, cycles
    );
}
