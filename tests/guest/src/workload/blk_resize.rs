//! `workload=blk-resize`: print the first disk's capacity, sleep until the device
//! signals a configuration change with a new capacity, print it, and prove the new
//! last sector works (write the pattern, read it back).

use super::Env;
use crate::cpl0::{events, idle_wait};
use crate::virtio::blk::{Blk, SECTOR, S_OK};
use crate::virtio::DEVICE_BLK;
use crate::{dma, pattern, println};

pub fn run(env: &Env) {
    let Some(slot) = env.devices(DEVICE_BLK).next() else {
        crate::fatal!("blk-resize: no virtio-blk device");
    };
    let seed = env.cmdline.u64("seed", 1);
    let mut dev = Blk::new(slot);
    let before = dev.capacity();
    println!("blk-resize: capacity={}", before);
    let after = loop {
        let seen = events();
        dev.ack_interrupt();
        let now = dev.capacity();
        if now != before {
            break now;
        }
        idle_wait(seen);
    };
    println!("blk-resize: resized capacity={}", after);
    if after > 0 {
        let buf = dma::alloc(SECTOR as usize, 4096);
        let last = after - 1;
        pattern::fill(seed, last * SECTOR, buf);
        let w = dev.write(last, buf);
        buf.fill(0);
        let r = dev.read(last, buf);
        let ok =
            w == S_OK && r == S_OK && pattern::first_mismatch(seed, last * SECTOR, buf).is_none();
        println!(
            "blk-resize: last sector {}",
            if ok { "ok" } else { "FAILED" }
        );
    }
}
