//! A private network namespace for benchmarks that put the host end of a TAP device on an
//! address: traffic between the generator and the guest stays inside it, and the names
//! and addresses used cannot meet anything else on the machine. Needs root (`ip netns`).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// A network namespace, deleted (with its interfaces) when dropped.
pub struct Namespace {
    name: String,
}

/// Runs `ip` with `args`; an error names the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Namespace {
    /// Creates the namespace `reprise-<tag>-<pid>` with its loopback up.
    pub fn create(tag: &str) -> Result<Namespace, String> {
        let name = format!("reprise-{tag}-{}", std::process::id());
        // A leftover of a crashed run of this pid would make `add` fail.
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let ns = Namespace { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Adds a TAP device `dev` with the host-side addresses `addrs` (CIDR) and IPv6 off,
    /// so that only the IPv4 traffic the benchmark makes crosses it.
    pub fn add_tap(&self, dev: &str, addrs: &[&str]) -> Result<(), String> {
        self.ip(&["tuntap", "add", "dev", dev, "mode", "tap"])?;
        let _ = self
            .command("sysctl")
            .args(["-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")])
            .output();
        for a in addrs {
            self.ip(&["addr", "add", a, "dev", dev])?;
        }
        self.ip(&["link", "set", dev, "up"])
    }

    /// A command running `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread inside the namespace: the sockets it opens belong there.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns(2) with a descriptor of a network namespace that stays open
                // for the call; it changes only this thread's namespace.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if r != 0 {
                    return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}
