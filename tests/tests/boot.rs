//! Booting the test guest: the `hello`, `ticks` and `dirty` workloads (and the dirty
//! workload's report of lost time), two vCPUs, and the clear report of a guest that cannot
//! run.

use std::time::Duration;

use reprise_tests::*;
use serde_json::json;

fn boot_config(scratch: &Scratch, vcpus: u8, args: &str, disk: bool) -> serde_json::Value {
    let mut cfg = json!({
        "machine-config": {"vcpu_count": vcpus, "mem_size_mib": 128},
        "boot-source": {
            "kernel_image_path": guest_elf(),
            "boot_args": args,
        },
        "serial": {"output": format!("file:{}", scratch.path("serial.log").display())},
    });
    if disk {
        let img = scratch.path("disk.img");
        std::fs::write(&img, vec![0u8; 4 << 20]).expect("create disk");
        cfg["drives"] = json!([{"drive_id": "disk0", "path_on_host": img}]);
    }
    cfg
}

fn run_to_exit(
    scratch: &Scratch,
    cfg: &serde_json::Value,
) -> (std::process::ExitStatus, String, String) {
    let path = write_config(scratch, cfg);
    let mut vm = Reprise::spawn(
        &["--config-file", path.to_str().expect("utf-8")],
        None,
        scratch.path("serial.log"),
    );
    let status = vm.wait_exit(Duration::from_secs(60));
    (status, vm.serial(), vm.stderr())
}

#[test]
fn hello_reports_memory_and_devices_then_resets() {
    require_kvm();
    let scratch = Scratch::new("hello");
    let cfg = boot_config(&scratch, 1, "workload=hello", true);
    let (status, serial, stderr) = run_to_exit(&scratch, &cfg);
    assert!(
        status.success(),
        "exit {status}\nserial:\n{serial}\nstderr:\n{stderr}"
    );
    assert!(serial.starts_with("reprise-guest 0.1 booted\n"), "{serial}");
    let mem = lines_with(&serial, "mem: ");
    assert_eq!(mem.len(), 1, "{serial}");
    let mib: u64 = mem[0]["mem: ".len()..]
        .trim_end_matches(" MiB")
        .parse()
        .expect("mem MiB");
    assert!((126..=128).contains(&mib), "{serial}");
    let virtio = lines_with(&serial, "virtio: ");
    assert_eq!(
        virtio,
        vec!["virtio: slot=0 base=0xd0000000 irq=16 type=blk"],
        "{serial}"
    );
    assert!(
        serial.contains("cmdline: workload=hello virtio_mmio.device=4K@0xd0000000:16"),
        "{serial}"
    );
    assert!(serial.ends_with("reprise-guest: done\n"), "{serial}");
    assert!(stderr.contains("the guest requested a reset"), "{stderr}");
}

#[test]
fn two_vcpus_boot_and_both_run() {
    require_kvm();
    let scratch = Scratch::new("smp");
    let cfg = boot_config(&scratch, 2, "workload=hello cpus=2", false);
    let (status, serial, stderr) = run_to_exit(&scratch, &cfg);
    assert!(
        status.success(),
        "exit {status}\nserial:\n{serial}\nstderr:\n{stderr}"
    );
    assert!(serial.contains("cpus: 2\n"), "{serial}");
    assert!(serial.contains("cpu1: apic=1 running\n"), "{serial}");
}

#[test]
fn ticks_counts_lapic_timer_interrupts() {
    require_kvm();
    let scratch = Scratch::new("ticks");
    let cfg = boot_config(
        &scratch,
        1,
        "workload=ticks ticks.hz=200 ticks.every=50 ticks.total=200",
        false,
    );
    let (status, serial, stderr) = run_to_exit(&scratch, &cfg);
    assert!(
        status.success(),
        "exit {status}\nserial:\n{serial}\nstderr:\n{stderr}"
    );
    let ticks = lines_with(&serial, "ticks: n=");
    assert_eq!(
        ticks,
        vec![
            "ticks: n=50",
            "ticks: n=100",
            "ticks: n=150",
            "ticks: n=200"
        ],
        "{serial}"
    );
    assert!(serial.contains("ticks: done\n"), "{serial}");
}

#[test]
fn dirty_prints_a_checksum_the_host_can_recompute() {
    require_kvm();
    let scratch = Scratch::new("dirty");
    let cfg = boot_config(
        &scratch,
        1,
        "workload=dirty dirty.mib=8 dirty.rate=5000 dirty.seconds=2",
        false,
    );
    let (status, serial, stderr) = run_to_exit(&scratch, &cfg);
    assert!(
        status.success(),
        "exit {status}\nserial:\n{serial}\nstderr:\n{stderr}"
    );
    let lines = lines_with(&serial, "dirty: second=");
    assert_eq!(lines.len(), 2, "{serial}");
    let mut last_writes = 0;
    for line in lines {
        let field = |k: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or_else(|| panic!("{k} missing in {line}"))
                .to_string()
        };
        let writes: u64 = field("writes=").parse().expect("writes");
        let checksum = u64::from_str_radix(&field("checksum="), 16).expect("checksum");
        assert!(writes > last_writes, "{serial}");
        last_writes = writes;
        assert_eq!(checksum, guest_image::dirty_checksum(8, writes), "{line}");
    }
}

#[test]
fn dirty_reports_the_time_a_pause_took_from_it() {
    require_kvm();
    let scratch = Scratch::new("dirty-gap");
    let mut vm = Reprise::with_api(&scratch);
    vm.boot_guest(
        64,
        "workload=dirty dirty.mib=8 dirty.rate=2000 dirty.hz=1000 dirty.gap_us=5000",
        json!([]),
        None,
    );
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));
    std::thread::sleep(Duration::from_millis(300));
    vm.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    let serial = vm.wait_serial("dirty: second=3 ", Duration::from_secs(30));
    // Complete lines only (the last one may still be being written).
    let serial = &serial[..serial.rfind('\n').map_or(0, |n| n + 1)];
    // The guest sleeps between ticks, so it sees the pause less up to one 1 ms tick.
    let gaps: Vec<u64> = lines_with(serial, "dirty-gap: us=")
        .iter()
        .map(|l| l["dirty-gap: us=".len()..].parse().expect("µs"))
        .collect();
    assert!(
        gaps.iter().any(|&us| (299_000..10_000_000).contains(&us)),
        "{serial}"
    );
    // The per-second lines keep their fields, with the second's longest gap appended.
    for line in lines_with(serial, "dirty: second=") {
        let writes: u64 = line
            .split(' ')
            .find_map(|f| f.strip_prefix("writes="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        let checksum = line
            .split(' ')
            .find_map(|f| f.strip_prefix("checksum="))
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(checksum, guest_image::dirty_checksum(8, writes), "{line}");
        assert!(line.contains(" max_gap_us="), "{line}");
    }
}

#[test]
fn kernel_mode_instruction_the_host_cannot_emulate_is_reported_clearly() {
    require_kvm();
    let scratch = Scratch::new("emulation");
    let cfg = boot_config(&scratch, 1, "workload=cpl0-popcnt", false);
    let (status, serial, stderr) = run_to_exit(&scratch, &cfg);
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        // PVM emulates guest kernel mode and cannot run popcnt there.
        assert!(!status.success(), "the VMM must fail: {serial}\n{stderr}");
        assert!(
            stderr.contains("the guest executed an instruction this host's KVM cannot emulate"),
            "{stderr}"
        );
        assert!(stderr.contains("CPL 0"), "{stderr}");
        assert!(
            stderr.contains("instruction bytes: f3 48 0f b8 c7"),
            "{stderr}"
        );
        assert!(stderr.contains("PVM"), "{stderr}");
        let rip = stderr
            .split("RIP 0x")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .expect("RIP in report");
        assert!(
            u64::from_str_radix(rip, 16).expect("hex RIP") >= 0x10_0000,
            "{stderr}"
        );
    } else {
        assert!(status.success(), "{serial}\n{stderr}");
        assert!(serial.contains("cpl0-popcnt: ok result=8"), "{serial}");
    }
}

/// Reserves huge pages for the duration of a test and gives them back afterwards.
struct HugePageReservation(u64);

impl HugePageReservation {
    const KNOB: &'static str = "/proc/sys/vm/nr_hugepages";

    fn add(pages: u64) -> Self {
        let before: u64 = std::fs::read_to_string(Self::KNOB)
            .expect("read nr_hugepages")
            .trim()
            .parse()
            .expect("number");
        std::fs::write(Self::KNOB, (before + pages).to_string())
            .expect("reserving huge pages needs root");
        HugePageReservation(before)
    }
}

impl Drop for HugePageReservation {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::KNOB, self.0.to_string());
    }
}

#[test]
fn hugetlbfs_backed_memory_boots_and_a_shortage_is_a_clear_error() {
    require_kvm();
    let scratch = Scratch::new("huge");
    let _reserved = HugePageReservation::add(40);
    let mut cfg = boot_config(&scratch, 1, "workload=hello", false);
    cfg["machine-config"] = json!({"vcpu_count": 1, "mem_size_mib": 64, "huge_pages": true});
    let (status, serial, stderr) = run_to_exit(&scratch, &cfg);
    assert!(
        status.success(),
        "exit {status}\nserial:\n{serial}\nstderr:\n{stderr}"
    );
    assert!(serial.contains("reprise-guest: done"), "{serial}");
    // Far more than is reserved: refused up front, naming the knob to turn.
    cfg["machine-config"] = json!({"vcpu_count": 1, "mem_size_mib": 65536, "huge_pages": true});
    let (status, _, stderr) = run_to_exit(&scratch, &cfg);
    assert!(!status.success());
    assert!(
        stderr.contains("hugetlbfs-backed guest memory") && stderr.contains("nr_hugepages"),
        "{stderr}"
    );
}

#[test]
fn initrd_reaches_the_guest_as_the_first_pvh_module() {
    require_kvm();
    let scratch = Scratch::new("initrd");
    let initrd: Vec<u8> = (0..300_001u32)
        .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
        .collect();
    let path = scratch.path("initrd.img");
    std::fs::write(&path, &initrd).expect("write initrd");
    let mut cfg = boot_config(&scratch, 1, "workload=hello", false);
    cfg["boot-source"]["initrd_path"] = json!(path);
    let (status, serial, stderr) = run_to_exit(&scratch, &cfg);
    assert!(
        status.success(),
        "exit {status}\nserial:\n{serial}\nstderr:\n{stderr}"
    );
    let expected = format!(
        "initrd: size={} crc32={:08x}\n",
        initrd.len(),
        crc32fast::hash(&initrd)
    );
    assert!(serial.contains(&expected), "want {expected:?} in\n{serial}");
}
