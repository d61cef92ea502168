//! `workload=blk-rounds`: round r writes the pattern for `seed + r` over the range
//! (`blk.sector`, `blk.sectors`) of the first disk, flushes, and prints
//! `blk-rounds: round=<r> done`. With `blk.wait=1` it then waits for a line on
//! the serial console: `next` starts the next round, `quit` ends. `blk.rounds`
//! bounds the rounds (0 = no bound).

use super::console::{disable_input, enable_input, read_line};
use super::Env;
use crate::virtio::blk::{Blk, SECTOR, S_OK};
use crate::virtio::DEVICE_BLK;
use crate::{dma, pattern, println};

const CHUNK: usize = 64 << 10;

pub fn run(env: &Env) {
    let Some(slot) = env.devices(DEVICE_BLK).next() else {
        crate::fatal!("blk-rounds: no virtio-blk device");
    };
    let first = env.cmdline.u64("blk.sector", 2048);
    let count = env.cmdline.u64("blk.sectors", 256);
    let seed = env.cmdline.u64("seed", 1);
    let rounds = env.cmdline.u64("blk.rounds", 0);
    let wait = env.cmdline.u64("blk.wait", 0) != 0;
    let mut dev = Blk::new(slot);
    if first + count > dev.capacity() {
        crate::fatal!(
            "blk-rounds: range {}+{} beyond capacity {}",
            first,
            count,
            dev.capacity()
        );
    }
    if wait {
        enable_input();
    }
    let buf = dma::alloc(CHUNK, 4096);
    let mut line = [0u8; 16];
    let mut round = 0u64;
    while rounds == 0 || round < rounds {
        let seed = seed.wrapping_add(round);
        let mut sector = first;
        while sector < first + count {
            let n = (first + count - sector).min(CHUNK as u64 / SECTOR);
            let data = &mut buf[..(n * SECTOR) as usize];
            pattern::fill(seed, sector * SECTOR, data);
            let status = dev.write(sector, data);
            if status != S_OK {
                crate::fatal!(
                    "blk-rounds: write of sector {} failed status={}",
                    sector,
                    status
                );
            }
            sector += n;
        }
        let status = dev.flush();
        if status != S_OK {
            crate::fatal!("blk-rounds: flush failed status={}", status);
        }
        println!("blk-rounds: round={} done", round);
        round += 1;
        if wait {
            let len = read_line(&mut line);
            if &line[..len] == b"quit" {
                break;
            }
        }
    }
    if wait {
        disable_input();
    }
    println!("blk-rounds: done");
}
