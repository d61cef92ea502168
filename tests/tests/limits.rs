//! I/O limits throttle the guest: over the guest's own measured window, the operations
//! (or bytes) that got through never exceed what the token bucket allows:
//! `done <= burst + rate * seconds` (plus one operation of rounding).

use std::time::Duration;

use reprise_tests::*;
use serde_json::json;

/// Runs `blk-rate` with `args` on a drive limited by `limits`; returns (ops, bytes, seconds).
fn run_rate(scratch: &Scratch, args: &str, limits: serde_json::Value) -> (u64, u64, f64) {
    let disk = scratch.path("disk.img");
    std::fs::write(&disk, vec![0u8; 8 << 20]).expect("disk");
    let cfg = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": guest_elf(), "boot_args": format!("workload=blk-rate {args}")},
        "drives": [{"drive_id": "d0", "path_on_host": disk, "limits": limits}],
        "serial": {"output": format!("file:{}", scratch.path("serial.log").display())},
    });
    let path = write_config(scratch, &cfg);
    let mut vm = Reprise::spawn(
        &["--config-file", path.to_str().expect("utf-8")],
        None,
        scratch.path("serial.log"),
    );
    let status = vm.wait_exit(Duration::from_secs(60));
    let serial = vm.serial();
    assert!(status.success(), "{serial}\n{}", vm.stderr());
    parse_rate(&serial)
}

/// (ops, bytes, seconds) from the guest's `blk-rate:` and `tsc:` lines.
pub fn parse_rate(serial: &str) -> (u64, u64, f64) {
    let value = |prefix: &str, key: &str| -> f64 {
        let line = lines_with(serial, prefix)
            .into_iter()
            .last()
            .unwrap_or_else(|| panic!("no {prefix} in\n{serial}"));
        line.split(' ')
            .find_map(|f| f.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    let khz = value("tsc: ", "khz=");
    let cycles = value("blk-rate: ", "cycles=");
    (
        value("blk-rate: ", "ops=") as u64,
        value("blk-rate: ", "bytes=") as u64,
        cycles / (khz * 1e3),
    )
}

#[test]
fn iops_limit_bounds_the_guests_request_rate() {
    require_kvm();
    let scratch = Scratch::new("limits-iops");
    let (rate, burst) = (200.0, 20.0);
    let (ops, _, secs) = run_rate(
        &scratch,
        "blk.ops=120 blk.rw=read",
        json!({"iops": {"rate": 200, "burst": 20}}),
    );
    assert_eq!(ops, 120);
    let allowed = burst + rate * secs + 1.0;
    assert!(
        ops as f64 <= allowed,
        "{ops} ops in {secs:.3} s exceed the bucket's {allowed:.1}"
    );
}

#[test]
fn write_bandwidth_limit_bounds_bytes_and_leaves_reads_alone() {
    require_kvm();
    let scratch = Scratch::new("limits-bps");
    // 256 KiB/s with a 64 KiB burst: 64 writes of 4 KiB need at least (256-64)/256 s.
    let limits = json!({"write_bps": {"rate": 262144, "burst": 65536}});
    let (ops, bytes, secs) = run_rate(&scratch, "blk.ops=64 blk.rw=write", limits.clone());
    assert_eq!(ops, 64);
    let allowed = 65536.0 + 262144.0 * secs + 4096.0;
    assert!(
        bytes as f64 <= allowed,
        "{bytes} bytes in {secs:.3} s exceed the bucket's {allowed:.0}"
    );
    // The same limit does not hold reads back: 64 reads go far faster than the write rate.
    let (_, read_bytes, read_secs) = run_rate(&scratch, "blk.ops=64 blk.rw=read", limits);
    assert!(
        read_secs < secs,
        "reads ({read_secs:.3} s) were throttled like writes ({secs:.3} s)"
    );
    assert_eq!(read_bytes, bytes);
}
