//! virtio-blk end to end: the guest reads, writes a seeded pattern, flushes, verifies and
//! discards; the host checks the image bytes. A read-only drive refuses writes.

use std::time::Duration;

use reprise_tests::*;
use serde_json::json;

const SECTOR: u64 = 512;
const START: u64 = 2048;
const COUNT: u64 = 256;
const SEED: u64 = 77;

fn field<'a>(serial: &'a str, prefix: &str, key: &str) -> &'a str {
    let line = lines_with(serial, prefix)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {prefix} line in\n{serial}"));
    line.split(' ')
        .find_map(|f| f.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn guest_writes_pattern_that_host_reads_back() {
    require_kvm();
    let scratch = Scratch::new("blk");
    // Disk 0: 8 MiB of known bytes. Disk 1: read-only.
    let initial: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let rw = scratch.path("rw.img");
    std::fs::write(&rw, &initial).expect("write rw image");
    let ro = scratch.path("ro.img");
    std::fs::write(&ro, vec![0x5a; 2 << 20]).expect("write ro image");
    let cfg = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 128},
        "boot-source": {"kernel_image_path": guest_elf(),
                         "boot_args": format!("workload=blk seed={SEED} blk.sector={START} blk.sectors={COUNT}")},
        "drives": [
            {"drive_id": "data", "path_on_host": rw},
            {"drive_id": "golden", "path_on_host": ro, "is_read_only": true},
        ],
        "serial": {"output": format!("file:{}", scratch.path("serial.log").display())},
    });
    let path = write_config(&scratch, &cfg);
    let mut vm = Reprise::spawn(
        &["--config-file", path.to_str().expect("utf-8")],
        None,
        scratch.path("serial.log"),
    );
    let status = vm.wait_exit(Duration::from_secs(60));
    let serial = vm.serial();
    assert!(
        status.success(),
        "exit {status}\nserial:\n{serial}\nstderr:\n{}",
        vm.stderr()
    );

    // Identity and capacity as configured.
    assert!(
        serial.contains("blk0: id=data capacity=16384 ro=0\n"),
        "{serial}"
    );
    assert!(
        serial.contains("blk1: id=golden capacity=4096 ro=1\n"),
        "{serial}"
    );

    // The guest read the bytes the host put there.
    let range = (START * SECTOR) as usize..((START + COUNT) * SECTOR) as usize;
    let read_crc = crc32fast::hash(&initial[range.clone()]);
    assert_eq!(
        field(&serial, "blk0: read ", "crc32="),
        format!("{read_crc:08x}"),
        "{serial}"
    );

    // The host sees the guest's pattern, except the discarded tail which reads as zeros.
    for l in ["blk0: write ok", "blk0: flush ok", "blk: done"] {
        assert!(serial.contains(l), "missing {l:?} in\n{serial}");
    }
    let on_disk = read_file_range(&rw, START * SECTOR, (COUNT * SECTOR) as usize);
    let expected = pattern_bytes(SEED, START * SECTOR, (COUNT * SECTOR) as usize);
    let discarded = serial.contains("blk0: discard ok");
    let tail = if discarded { (8 * SECTOR) as usize } else { 0 };
    let keep = expected.len() - tail;
    assert!(
        on_disk[..keep] == expected[..keep],
        "image bytes differ from the guest's pattern"
    );
    assert!(
        on_disk[keep..].iter().all(|&b| b == 0),
        "discarded sectors are not zero"
    );
    let verify_crc = crc32fast::hash(&expected);
    assert_eq!(
        field(&serial, "blk0: verify ok", "crc32="),
        format!("{verify_crc:08x}"),
        "{serial}"
    );
    // Bytes outside the range are untouched.
    let before = read_file_range(&rw, 0, range.start);
    assert!(
        before == initial[..range.start],
        "bytes before the range changed"
    );

    // The read-only drive refused the write and kept its bytes.
    assert!(
        serial.contains("blk1: write refused status=1\n"),
        "{serial}"
    );
    assert!(std::fs::read(&ro)
        .expect("read ro")
        .iter()
        .all(|&b| b == 0x5a));
}
