//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use replay::capture::{BufferConfig, ManualClock, Recorder, SnapshotExists};
use replay::{SourceInfo, SourceTable};

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("reprise-replay-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic generator (xorshift64*).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const NET0: u16 = 0;
pub const BLK0: u16 = 1;
pub const SERIAL: u16 = 2;
pub const NET1: u16 = 3;
pub const GUEST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
pub const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x01];

/// net0, blk0, serial, net1.
pub fn sources() -> SourceTable {
    SourceTable::new(vec![
        SourceInfo::net(NET0, "net0", Some(GUEST_MAC)),
        SourceInfo::blk(BLK0, "blk0"),
        SourceInfo::serial(SERIAL, "serial"),
        SourceInfo::net(NET1, "net1", None),
    ])
    .unwrap()
}

/// 2023-11-14T22:13:20Z, as Unix ns.
pub const START_UNIX_NS: u64 = 1_700_000_000_000_000_000;

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START_UNIX_NS))
}

pub fn all_exist() -> SnapshotExists {
    Arc::new(|_: &str| true)
}

pub fn start(buffers: Vec<BufferConfig>, clock: &Arc<ManualClock>) -> Recorder {
    Recorder::start(sources(), buffers, clock.clone(), all_exist()).unwrap()
}

/// A UDP/IPv4 frame between the guest (10.0.0.2) and the host (10.0.0.1).
pub fn udp(to_guest: bool, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (smac, dmac, sip, dip) = if to_guest {
        (HOST_MAC, GUEST_MAC, [10, 0, 0, 1], [10, 0, 0, 2])
    } else {
        (GUEST_MAC, HOST_MAC, [10, 0, 0, 2], [10, 0, 0, 1])
    };
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2(smac, dmac)
        .ipv4(sip, dip, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}
