//! Cross-check: the same guest ELF boots under QEMU's microvm machine with QEMU's own
//! virtio-mmio devices and prints the same results as under Reprise.

use std::path::Path;
use std::time::Duration;

use reprise_tests::*;
use reprise_tools::guest_run::{
    qemu_available, qemu_command, reprise_command, GuestProcess, GuestSpec,
};

/// Lines that do not depend on the VMM (device addresses, command line and RAM layout do).
fn workload_lines(output: &[String]) -> Vec<String> {
    output
        .iter()
        .filter(|l| {
            !l.starts_with("cmdline:") && !l.starts_with("virtio:") && !l.starts_with("mem:")
        })
        .cloned()
        .collect()
}

fn run(what: &str, cmd: std::process::Command) -> Vec<String> {
    let mut p = GuestProcess::spawn(what, cmd, true).expect("spawn");
    p.wait_line("reprise-guest: done", Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        p.finish(Duration::from_secs(30)),
        "{what} did not exit cleanly:\n{}",
        p.output.join("\n")
    );
    p.output.clone()
}

fn spec<'a>(kernel: &'a Path, args: &str, disk: &Path, vcpus: u8) -> GuestSpec<'a> {
    GuestSpec {
        kernel,
        args: args.into(),
        mem_mib: 128,
        vcpus,
        disks: vec![disk.to_path_buf()],
        net: None,
    }
}

#[test]
fn same_guest_same_results_under_qemu_microvm() {
    require_kvm();
    assert!(
        qemu_available(),
        "qemu-system-x86_64 is missing: install the Debian package qemu-system-x86"
    );
    let scratch = Scratch::new("qemu");
    let initial: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(40503) >> 7) as u8)
        .collect();
    let (disk_q, disk_r) = (scratch.path("qemu.img"), scratch.path("reprise.img"));
    std::fs::write(&disk_q, &initial).expect("image");
    std::fs::write(&disk_r, &initial).expect("image");
    let args = "workload=blk seed=9 blk.sector=4096 blk.sectors=512 cpus=2";

    let qemu = run("qemu", qemu_command(&spec(guest_elf(), args, &disk_q, 2)));
    let reprise = run(
        "reprise",
        reprise_command(&spec(guest_elf(), args, &disk_r, 2), &scratch.path("")).expect("cmd"),
    );

    // QEMU really used its own virtio-mmio devices.
    assert!(
        qemu.iter()
            .any(|l| l.starts_with("virtio: ") && l.ends_with("type=blk")),
        "{qemu:?}"
    );
    assert!(qemu.iter().any(|l| l == "cpus: 2"), "{qemu:?}");
    assert!(
        qemu.iter().any(|l| l.starts_with("blk0: verify ok")),
        "{qemu:?}"
    );
    assert_eq!(
        workload_lines(&qemu),
        workload_lines(&reprise),
        "results differ between QEMU and Reprise"
    );
    // And the disks end up byte-identical.
    assert!(
        std::fs::read(&disk_q).expect("read") == std::fs::read(&disk_r).expect("read"),
        "disk images differ"
    );
}
