//! Helpers shared by the integration tests: locating the binaries and the test guest,
//! launching `reprise`, reading its serial log, and talking to its API.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use guest_image::{guest_elf, pattern_bytes};

pub mod netns;

/// Fails the test with a clear message when a host device the test needs is missing.
pub fn require_device(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: this test needs {what}; run it on a host with it (every machine \
         this project uses has it)"
    );
}

/// Fails unless /dev/kvm exists.
pub fn require_kvm() {
    require_device("/dev/kvm", "KVM");
}

/// Directory holding the workspace's built binaries (target/debug or target/release).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

/// Path of a workspace binary, built (or brought up to date) once per test process, so a
/// test never runs a stale binary when only this crate's tests were asked for.
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let path = target_dir().join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", package, "--bin", name]);
        if target_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} --bin {name} failed"
        );
        built.push(name.to_string());
    }
    path
}

/// Path of the `reprise` binary.
pub fn reprise_bin() -> PathBuf {
    binary("reprise-vmm", "reprise")
}

/// A scratch directory removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("reprise-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `reprise` process.
pub struct Reprise {
    /// The child process.
    pub child: Child,
    /// Its API socket, if it has one.
    pub api_sock: Option<PathBuf>,
    /// File receiving the guest's serial output.
    pub serial_log: PathBuf,
    stderr_log: PathBuf,
}

impl Reprise {
    /// Starts `reprise` with `args`; stderr goes to a file next to the serial log.
    pub fn spawn(args: &[&str], api_sock: Option<PathBuf>, serial_log: PathBuf) -> Self {
        let mut cmd = Command::new(reprise_bin());
        cmd.args(args);
        Reprise::spawn_command(cmd, api_sock, serial_log)
    }

    /// Starts `cmd`, a command that runs `reprise` (e.g. inside a network namespace:
    /// [`netns::NetNs::command`]); stderr goes to a file next to the serial log.
    pub fn spawn_command(mut cmd: Command, api_sock: Option<PathBuf>, serial_log: PathBuf) -> Self {
        let stderr_log = serial_log.with_extension("stderr");
        let stderr = std::fs::File::create(&stderr_log).expect("create stderr log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn reprise");
        Reprise {
            child,
            api_sock,
            serial_log,
            stderr_log,
        }
    }

    /// Starts `reprise --api-sock` and waits for the socket to appear.
    pub fn with_api(scratch: &Scratch) -> Self {
        let sock = scratch.path("api.sock");
        let serial = scratch.path("serial.log");
        let r = Reprise::spawn(
            &["--api-sock", sock.to_str().expect("utf-8 path")],
            Some(sock.clone()),
            serial,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "API socket never appeared: {}",
                r.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        r
    }

    /// Everything written to the serial log so far.
    pub fn serial(&self) -> String {
        std::fs::read_to_string(&self.serial_log).unwrap_or_default()
    }

    /// Everything the VMM logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Waits until the serial log contains `needle`; panics with the log on timeout.
    pub fn wait_serial(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.serial();
            if s.contains(needle) {
                return s;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let s = self.serial();
                if s.contains(needle) {
                    return s;
                }
                panic!(
                    "reprise exited ({status}) before {needle:?} appeared.\nserial:\n{s}\nstderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}.\nserial:\n{s}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "reprise did not exit in time.\nserial:\n{}\nstderr:\n{}",
                    self.serial(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends an API request; returns status and parsed JSON body.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, Option<serde_json::Value>) {
        let sock = self
            .api_sock
            .as_ref()
            .expect("this reprise has no API socket");
        reprise_tools::api_client::request(sock, method, path, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.stderr()))
    }

    /// Sends an API request expecting 204 No Content.
    pub fn api_ok(&self, method: &str, path: &str, body: serde_json::Value) {
        let (status, resp) = self.api(method, path, Some(body));
        assert_eq!(status, 204, "{method} {path} -> {status} {resp:?}");
    }

    /// The `state` field of `GET /`.
    pub fn state(&self) -> String {
        let (status, body) = self.api("GET", "/", None);
        assert_eq!(status, 200);
        body.and_then(|b| b["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

impl Drop for Reprise {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes a config file for `reprise --config-file` and returns its path.
pub fn write_config(scratch: &Scratch, config: &serde_json::Value) -> PathBuf {
    let path = scratch.path("vm.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config).expect("json")).expect("write config");
    path
}

/// Reads `len` bytes at `offset` from a file.
pub fn read_file_range(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path).expect("open image");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).expect("read image");
    buf
}

/// Lines of `text` that start with `prefix`.
pub fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The usual configuration: the test guest with `boot_args`, 1 vCPU, 64 MiB, the given
/// `drives` (a JSON array) and the serial log in `scratch`.
pub fn guest_config(
    scratch: &Scratch,
    boot_args: &str,
    drives: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
        "boot-source": {"kernel_image_path": guest_elf(), "boot_args": boot_args},
        "drives": drives,
        "serial": {"output": format!("file:{}", scratch.path("serial.log").display())},
    })
}

/// Starts `reprise --config-file` with `config` (written into `scratch`).
pub fn spawn_with_config(scratch: &Scratch, config: &serde_json::Value) -> Reprise {
    let path = write_config(scratch, config);
    Reprise::spawn(
        &["--config-file", path.to_str().expect("utf-8 path")],
        None,
        scratch.path("serial.log"),
    )
}

/// Connects to a Unix stream socket the VMM is about to create (waits up to 20 s).
pub fn connect_unix(path: &Path) -> std::os::unix::net::UnixStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(path) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "socket {} never accepted",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Reprise {
    /// Configures the test guest over the API — 1 vCPU, `mem_mib` MiB, `boot_args`, the
    /// `drives` (a JSON array of drive bodies), serial output to this process's log and
    /// input from `serial_input` if given — and starts it.
    pub fn boot_guest(
        &self,
        mem_mib: u64,
        boot_args: &str,
        drives: serde_json::Value,
        serial_input: Option<&Path>,
    ) {
        self.configure_guest(mem_mib, boot_args, drives, serial_input);
        self.api_ok(
            "PUT",
            "/actions",
            serde_json::json!({"action_type": "InstanceStart"}),
        );
    }

    /// Configures the guest as [`Reprise::boot_guest`] does, without starting it.
    pub fn configure_guest(
        &self,
        mem_mib: u64,
        boot_args: &str,
        drives: serde_json::Value,
        serial_input: Option<&Path>,
    ) {
        self.api_ok(
            "PUT",
            "/machine-config",
            serde_json::json!({"vcpu_count": 1, "mem_size_mib": mem_mib}),
        );
        self.api_ok(
            "PUT",
            "/boot-source",
            serde_json::json!({"kernel_image_path": guest_elf(), "boot_args": boot_args}),
        );
        for d in drives.as_array().cloned().unwrap_or_default() {
            let id = d["drive_id"].as_str().expect("drive_id").to_string();
            self.api_ok("PUT", &format!("/drives/{id}"), d);
        }
        let mut serial =
            serde_json::json!({"output": format!("file:{}", self.serial_log.display())});
        if let Some(input) = serial_input {
            serial["input"] = serde_json::json!(format!("socket:{}", input.display()));
        }
        self.api_ok("PUT", "/serial", serial);
    }
}

/// Runs `reprise-volume` with `args`, failing the test with its output if it fails;
/// returns its standard output.
pub fn volume_tool(args: &[&str]) -> String {
    let out = Command::new(binary("reprise-tools", "reprise-volume"))
        .args(args)
        .output()
        .expect("run reprise-volume");
    assert!(
        out.status.success(),
        "reprise-volume {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The contents of volume `dir` (or of its `snapshot`), through `reprise-volume export-raw`.
pub fn export_volume(dir: &Path, snapshot: Option<&str>, out: &Path) -> Vec<u8> {
    let mut args = vec![
        "export-raw",
        dir.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
        "--quiet",
    ];
    if let Some(s) = snapshot {
        args.extend(["--snapshot", s]);
    }
    volume_tool(&args);
    std::fs::read(out).expect("read export")
}
