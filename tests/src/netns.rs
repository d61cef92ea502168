//! Network namespaces for tests that give the host side of a TAP device an address: each
//! test gets a namespace of its own, so tests running side by side (in one process or
//! several) can all use the same addresses and interface names without meeting.
//! Needs root (`ip netns`).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// A network namespace, deleted (with its interfaces) on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a fresh namespace whose name contains `tag`.
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("reprise-{tag}-{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run_ip(&["netns", "add", &name]);
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip <args>` inside the namespace; fails the test if it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all);
    }

    /// Creates a persistent TAP interface `name` in the namespace with the host-side
    /// addresses `addrs` (CIDR, e.g. `10.0.0.1/24`) and IPv6 off, so that only IPv4
    /// traffic the test causes crosses it. The link comes up when a VMM attaches.
    pub fn add_tap(&self, name: &str, addrs: &[&str]) {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        let sysctl = format!("net.ipv6.conf.{name}.disable_ipv6=1");
        let _ = self.command("sysctl").args(["-qw", &sysctl]).output();
        for a in addrs {
            self.ip(&["addr", "add", a, "dev", name]);
        }
        self.ip(&["link", "set", name, "up"]);
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`, which
    /// execs it: the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it creates belong
    /// to the namespace (and stay there when used from other threads).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: plain setns(2) on a valid namespace descriptor; it changes
                // only this thread's network namespace.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run_ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
