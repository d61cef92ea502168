//! Benchmarks of Reprise against QEMU microvm running the same test guest: boot time,
//! virtio-blk throughput and virtio-net echo round trips. Figures are measured, never
//! asserted; `reprise-bench` prints them.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::guest_run::{
    qemu_command, reprise_command, DgramNet, GuestProcess, GuestSpec, RunError,
};

/// Which VMM runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    /// This project.
    Reprise,
    /// QEMU microvm.
    Qemu,
}

impl Vmm {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Vmm::Reprise => "reprise",
            Vmm::Qemu => "qemu",
        }
    }
}

fn spawn(vmm: Vmm, spec: &GuestSpec<'_>, dir: &Path) -> Result<GuestProcess, RunError> {
    let cmd = match vmm {
        Vmm::Reprise => reprise_command(spec, dir)?,
        Vmm::Qemu => qemu_command(spec),
    };
    GuestProcess::spawn(vmm.name(), cmd, true)
}

/// Median of `xs` (sorted in place).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Milliseconds from process start to the guest's banner, one sample per run.
pub fn boot_times(vmm: Vmm, kernel: &Path, dir: &Path, runs: usize) -> Result<Vec<f64>, RunError> {
    let spec = GuestSpec {
        kernel,
        args: "workload=hello".into(),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![],
        net: None,
    };
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut p = spawn(vmm, &spec, dir)?;
        let t = p.wait_line("reprise-guest 0.1 booted", Duration::from_secs(30))?;
        samples.push(t.as_secs_f64() * 1e3);
        p.wait_line("reprise-guest: done", Duration::from_secs(30))?;
        p.finish(Duration::from_secs(10));
    }
    Ok(samples)
}

/// One block benchmark figure.
#[derive(Debug, Clone)]
pub struct BlkFigure {
    /// seq-write, seq-read, rand-write or rand-read.
    pub test: String,
    /// MiB/s.
    pub mib_per_s: f64,
    /// Requests per second.
    pub iops: f64,
}

/// Runs the guest's queue-depth-1 block benchmark on `disk`.
pub fn blk_bench(
    vmm: Vmm,
    kernel: &Path,
    dir: &Path,
    disk: &Path,
    mib: u64,
    ops: u64,
) -> Result<Vec<BlkFigure>, RunError> {
    let spec = GuestSpec {
        kernel,
        args: blk_bench_args(mib, ops),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![disk.to_path_buf()],
        net: None,
    };
    let mut p = spawn(vmm, &spec, dir)?;
    p.wait_line("reprise-guest: done", Duration::from_secs(300))?;
    p.finish(Duration::from_secs(10));
    Ok(blk_figures(&p.output))
}

/// The guest command line of the block benchmark: `mib` MiB sequential, `ops` random 4 KiB
/// requests.
pub fn blk_bench_args(mib: u64, ops: u64) -> String {
    format!("workload=blk blk.bench=1 blk.sector=2048 blk.bench_mib={mib} blk.bench_ops={ops}")
}

/// The figures of the block benchmark from the guest's serial output (the guest times each
/// test with its TSC).
pub fn blk_figures(output: &[String]) -> Vec<BlkFigure> {
    let khz: f64 = output
        .iter()
        .find_map(|l| l.strip_prefix("tsc: khz="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let field = |line: &str, key: &str| -> f64 {
        line.split(' ')
            .find_map(|f| f.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    output
        .iter()
        .filter_map(|l| l.strip_prefix("bench: blk "))
        .map(|rest| {
            let test = rest.split(' ').next().unwrap_or("?").to_string();
            let secs = field(rest, "cycles=") / (khz * 1e3);
            BlkFigure {
                test,
                mib_per_s: field(rest, "bytes=") / secs / f64::from(1u32 << 20),
                iops: field(rest, "ops=") / secs,
            }
        })
        .collect()
}

/// Round trips per second of 64-byte frames through the datagram backend.
pub fn net_echo_rate(vmm: Vmm, kernel: &Path, dir: &Path, rounds: u32) -> Result<f64, RunError> {
    let net = DgramNet {
        vmm_sock: dir.join(format!("{}-vm.sock", vmm.name())),
        host_sock: dir.join(format!("{}-host.sock", vmm.name())),
        mac: "06:00:ac:10:00:02".into(),
    };
    let _ = std::fs::remove_file(&net.host_sock);
    let _ = std::fs::remove_file(&net.vmm_sock);
    let io_err = |e: std::io::Error| RunError::Start {
        what: "host socket".into(),
        detail: e.to_string(),
    };
    let sock = UnixDatagram::bind(&net.host_sock).map_err(io_err)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io_err)?;
    let vmm_sock = net.vmm_sock.clone();
    let spec = GuestSpec {
        kernel,
        args: "workload=net-echo".into(),
        mem_mib: 128,
        vcpus: 1,
        disks: vec![],
        net: Some(net),
    };
    let mut p = spawn(vmm, &spec, dir)?;
    p.wait_line("net-echo: ready", Duration::from_secs(30))?;
    let rate = echo_round_trips(&sock, &vmm_sock, rounds)?;
    p.wait_line("reprise-guest: done", Duration::from_secs(10))?;
    p.finish(Duration::from_secs(10));
    Ok(rate)
}

/// Drives the guest's `net-echo` workload (once it is ready) from `sock` to the VMM's
/// datagram socket `vmm_sock`: 100 round trips of a 64-byte frame to warm up, then
/// `rounds` timed ones, then the frame that ends the workload. Returns round trips per
/// second.
pub fn echo_round_trips(
    sock: &UnixDatagram,
    vmm_sock: &Path,
    rounds: u32,
) -> Result<f64, RunError> {
    let io_err = |e: std::io::Error| RunError::Start {
        what: "host socket".into(),
        detail: e.to_string(),
    };
    let mut frame = vec![0u8; 64];
    frame[..6].copy_from_slice(&[0x06, 0x00, 0xac, 0x10, 0x00, 0x02]);
    frame[6..12].copy_from_slice(&[0x06, 0x00, 0xac, 0x10, 0x00, 0x01]);
    frame[12..14].copy_from_slice(&[0x88, 0xb6]);
    let mut buf = [0u8; 2048];
    // Warm up, then measure.
    for _ in 0..100 {
        sock.send_to(&frame, vmm_sock).map_err(io_err)?;
        sock.recv(&mut buf).map_err(io_err)?;
    }
    let t = Instant::now();
    for _ in 0..rounds {
        sock.send_to(&frame, vmm_sock).map_err(io_err)?;
        sock.recv(&mut buf).map_err(io_err)?;
    }
    let rate = f64::from(rounds) / t.elapsed().as_secs_f64();
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    frame[14..18].copy_from_slice(b"STOP");
    sock.send_to(&frame, vmm_sock).map_err(io_err)?;
    Ok(rate)
}
