//! The workloads: one run each of net-echo, the block benchmark and kv, in a given mode.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::vm::Vm;
use super::{err, Mode, RecordingBenchOptions, RunCost};
use crate::bench::{blk_bench_args, blk_figures, echo_round_trips};
use crate::guest_run::{reprise_config, DgramNet, GuestSpec};
use crate::kvgen;
use crate::netns::Namespace;

/// One net-echo run: round trips per second.
pub(super) fn net_echo_once(
    kernel: &Path,
    dir: &Path,
    mode: Mode,
    rounds: u32,
) -> Result<(f64, RunCost), String> {
    let net = DgramNet {
        vmm_sock: dir.join("echo-vm.sock"),
        host_sock: dir.join("echo-host.sock"),
        mac: "06:00:ac:10:00:02".into(),
    };
    let _ = std::fs::remove_file(&net.host_sock);
    let _ = std::fs::remove_file(&net.vmm_sock);
    let sock = UnixDatagram::bind(&net.host_sock).map_err(err)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    let vmm_sock = net.vmm_sock.clone();
    let spec = GuestSpec {
        kernel,
        args: "workload=net-echo".into(),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![],
        net: Some(net),
    };
    let capture = dir.join("capture");
    let mut vm = Vm::launch(&reprise_config(&spec), dir, &capture, mode, None)?;
    vm.process
        .wait_line("net-echo: ready", Duration::from_secs(30))
        .map_err(err)?;
    let rate = echo_round_trips(&sock, &vmm_sock, rounds).map_err(err)?;
    vm.process
        .wait_line("reprise-guest: done", Duration::from_secs(10))
        .map_err(err)?;
    let cost = vm.finish(mode)?;
    let _ = std::fs::remove_dir_all(&capture);
    Ok((rate, cost))
}

/// One block benchmark run: (test, MiB/s, IOPS) per test.
pub(super) fn blk_once(
    kernel: &Path,
    dir: &Path,
    mode: Mode,
    opts: &RecordingBenchOptions,
) -> Result<(Vec<crate::bench::BlkFigure>, RunCost), String> {
    let disk = dir.join("blk-bench.img");
    let _ = std::fs::remove_file(&disk);
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len((opts.blk_mib + 16) << 20))
        .map_err(err)?;
    let spec = GuestSpec {
        kernel,
        args: blk_bench_args(opts.blk_mib, opts.blk_ops),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![disk.clone()],
        net: None,
    };
    let capture = dir.join("capture");
    let mut vm = Vm::launch(&reprise_config(&spec), dir, &capture, mode, None)?;
    vm.process
        .wait_line("reprise-guest: done", Duration::from_secs(300))
        .map_err(err)?;
    let figures = blk_figures(&vm.process.output);
    let cost = vm.finish(mode)?;
    let _ = std::fs::remove_dir_all(&capture);
    let _ = std::fs::remove_file(&disk);
    if figures.len() != 4 || figures.iter().any(|f| !f.iops.is_finite()) {
        return Err(format!("the block benchmark reported {figures:?}"));
    }
    Ok((figures, cost))
}

/// The TAP device of the kv workload, its host and guest ends.
pub(super) const KV_TAP: &str = "rectap0";
pub(super) const KV_HOST: &str = "10.0.0.1";
const KV_GUEST: std::net::SocketAddrV4 =
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 2), 7000);

/// One kv run: requests answered per second.
pub(super) fn kv_once(
    kernel: &Path,
    dir: &Path,
    ns: &Namespace,
    mode: Mode,
    opts: &RecordingBenchOptions,
) -> Result<(f64, RunCost), String> {
    let disk = dir.join("kv.img");
    let _ = std::fs::remove_file(&disk);
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(16 << 20))
        .map_err(err)?;
    let config = json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": kernel,
                        "boot_args": format!("workload=kv kv.ip={} kv.port={}",
                                             KV_GUEST.ip(), KV_GUEST.port())},
        "drives": [{"drive_id": "d0", "path_on_host": disk}],
        "network-interfaces": [{"iface_id": "net0", "host_dev_name": KV_TAP,
                                "guest_mac": "06:00:ac:10:00:02"}],
    });
    let capture = dir.join("capture");
    let mut vm = Vm::launch(&config, dir, &capture, mode, Some(ns.name()))?;
    vm.process
        .wait_line("kv: ready", Duration::from_secs(30))
        .map_err(err)?;
    let host: std::net::Ipv4Addr = KV_HOST.parse().map_err(err)?;
    let cfg = kvgen::Config {
        target: KV_GUEST,
        sources: vec![host],
        port_base: 40000,
        trigger_source: None,
        plan: kvgen::plan::PlanSpec {
            seed: 1,
            clients: 4,
            requests: opts.kv_requests,
            keys: 200,
            key_prefix: "key-".into(),
            value_len: (4, 64),
            mix: kvgen::plan::Mix::default(),
            sweep: false,
            trigger_after: None,
            quit: true,
        },
        rate: opts.kv_rate,
        window: opts.kv_window,
        timeout: Duration::from_secs(5),
        journal: None,
        initial: kvgen::Initial::Empty,
    };
    let summary = ns.run(|| kvgen::run(&cfg))?.map_err(err)?;
    if !summary.passed() {
        return Err(format!(
            "kv run failed: sent {}, replies {}, lost {}, unexpected {}, mismatches {}",
            summary.sent,
            summary.replies,
            summary.lost,
            summary.unexpected,
            summary.mismatches.len()
        ));
    }
    vm.process
        .wait_line("reprise-guest: done", Duration::from_secs(20))
        .map_err(err)?;
    let cost = vm.finish(mode)?;
    let _ = std::fs::remove_dir_all(&capture);
    let _ = std::fs::remove_file(&disk);
    Ok((summary.replies as f64 / summary.elapsed_s, cost))
}

/// Whether the kv workload can run here (root, TUN/TAP, iproute2); why not otherwise.
pub fn kv_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    let ip = std::process::Command::new("ip")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some("no ip (iproute2)".into());
    }
    None
}
