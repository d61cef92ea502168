//! `workload=blk`: read, write, flush, verify and discard a sector range on every
//! virtio-blk device.

use super::Env;
use crate::crc32::Crc32;
use crate::pattern;
use crate::virtio::blk::{Blk, SECTOR, S_OK};
use crate::virtio::DEVICE_BLK;
use crate::{dma, println};

/// Bytes per request.
const CHUNK: usize = 128 << 10;
/// Sectors discarded at the end of the range.
const DISCARD_SECTORS: u64 = 8;

pub fn run(env: &Env) {
    let first = env.cmdline.u64("blk.sector", 2048);
    let count = env.cmdline.u64("blk.sectors", 256);
    let seed = env.cmdline.u64("seed", 1);
    let buf = dma::alloc(CHUNK, 4096);
    for (i, slot) in env.devices(DEVICE_BLK).enumerate() {
        let mut dev = Blk::new(slot);
        let (id, id_len) = dev.id();
        let capacity = dev.capacity();
        let ro = dev.read_only();
        println!(
            "blk{}: id={} capacity={} ro={}",
            i,
            crate::cmdline::Bytes(&id[..id_len]),
            capacity,
            u8::from(ro)
        );
        if first.checked_add(count).is_none_or(|end| end > capacity) {
            crate::fatal!(
                "blk{}: range {}+{} beyond capacity {}",
                i,
                first,
                count,
                capacity
            );
        }
        let crc = read_range(&mut dev, i, first, count, buf, |_, _| {});
        println!("blk{}: read crc32={:08x}", i, crc);
        if ro {
            pattern::fill(
                seed.wrapping_add(i as u64),
                first * SECTOR,
                &mut buf[..SECTOR as usize],
            );
            let status = dev.write(first, &buf[..SECTOR as usize]);
            println!("blk{}: write refused status={}", i, status);
            continue;
        }
        let seed = seed.wrapping_add(i as u64);
        write_range(&mut dev, i, first, count, seed, buf);
        println!("blk{}: write ok", i);
        if dev.has_flush() {
            let status = dev.flush();
            if status != S_OK {
                crate::fatal!("blk{}: flush failed status={}", i, status);
            }
            println!("blk{}: flush ok", i);
        } else {
            println!("blk{}: flush unsupported", i);
        }
        let mut mismatch = None;
        let crc = read_range(&mut dev, i, first, count, buf, |offset, data| {
            if mismatch.is_none() {
                mismatch = pattern::first_mismatch(seed, offset, data).map(|p| offset + p as u64);
            }
        });
        match mismatch {
            None => println!("blk{}: verify ok crc32={:08x}", i, crc),
            Some(byte) => println!("blk{}: verify MISMATCH at byte {}", i, byte),
        }
        if dev.has_discard() && count >= DISCARD_SECTORS {
            discard_tail(&mut dev, i, first + count - DISCARD_SECTORS, buf);
        }
    }
    println!("blk: done");
}

/// Read `count` sectors from `first` in chunks; `check` sees each chunk with its
/// absolute disk byte offset. Returns the CRC-32 of the whole range.
fn read_range(
    dev: &mut Blk,
    i: usize,
    first: u64,
    count: u64,
    buf: &mut [u8],
    mut check: impl FnMut(u64, &[u8]),
) -> u32 {
    let mut crc = Crc32::new();
    let mut sector = first;
    while sector < first + count {
        let n = (first + count - sector).min(buf.len() as u64 / SECTOR);
        let data = &mut buf[..(n * SECTOR) as usize];
        let status = dev.read(sector, data);
        if status != S_OK {
            crate::fatal!(
                "blk{}: read of sector {} failed status={}",
                i,
                sector,
                status
            );
        }
        crc.update(data);
        check(sector * SECTOR, data);
        sector += n;
    }
    crc.finish()
}

/// Write the pattern for `seed` over `count` sectors from `first`.
fn write_range(dev: &mut Blk, i: usize, first: u64, count: u64, seed: u64, buf: &mut [u8]) {
    let mut sector = first;
    while sector < first + count {
        let n = (first + count - sector).min(buf.len() as u64 / SECTOR);
        let data = &mut buf[..(n * SECTOR) as usize];
        pattern::fill(seed, sector * SECTOR, data);
        let status = dev.write(sector, data);
        if status != S_OK {
            crate::fatal!(
                "blk{}: write of sector {} failed status={}",
                i,
                sector,
                status
            );
        }
        sector += n;
    }
}

/// Discard `DISCARD_SECTORS` sectors at `sector` and check they read back as zeros.
fn discard_tail(dev: &mut Blk, i: usize, sector: u64, buf: &mut [u8]) {
    let status = dev.discard(sector, DISCARD_SECTORS as u32);
    if status != S_OK {
        println!("blk{}: discard failed status={}", i, status);
        return;
    }
    let data = &mut buf[..(DISCARD_SECTORS * SECTOR) as usize];
    let status = dev.read(sector, data);
    if status != S_OK {
        crate::fatal!(
            "blk{}: read of sector {} failed status={}",
            i,
            sector,
            status
        );
    }
    if data.iter().all(|&b| b == 0) {
        println!("blk{}: discard ok", i);
    } else {
        println!("blk{}: discard MISMATCH", i);
    }
}
