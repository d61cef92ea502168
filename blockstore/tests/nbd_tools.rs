//! The NBD server against real clients: `qemu-img` (Debian `qemu-utils`), `nbdinfo` and
//! `nbdcopy` (Debian `libnbd-bin`). These tools are part of the project's build
//! environment; a missing tool fails the test with the package to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use blockstore::nbd::{MemExport, NbdServer};

const SIZE: usize = 4 << 20;

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("reprise-nbd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic test data: pseudo-random blocks with some all-zero stretches, so
/// clients that skip zeroes are exercised too.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let zero_stretch = (i / 65536) % 5 == 3;
        out.push(if zero_stretch { 0 } else { x as u8 });
    }
    out
}

/// Finds `name` on `PATH`, or fails naming the Debian package that provides it.
fn tool(name: &str) -> PathBuf {
    let package = match name {
        "qemu-img" => "qemu-utils",
        _ => "libnbd-bin",
    };
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed; these tests need it (apt-get install -y {package})")
        })
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unix_uri(socket: &Path, export: &str) -> String {
    format!("nbd+unix:///{export}?socket={}", socket.display())
}

struct Fixture {
    dir: TempDir,
    socket: PathBuf,
    disk: Arc<Mutex<MemExport>>,
    ro: Arc<Mutex<MemExport>>,
    server: NbdServer,
}

/// A server on a Unix socket and an ephemeral loopback TCP port with two exports:
/// `disk` (writable, patterned) and `ro` (read-only, a different pattern).
fn fixture(tag: &str) -> Fixture {
    let dir = TempDir::new(tag);
    let socket = dir.path("nbd.sock");
    let disk = Arc::new(Mutex::new(MemExport::from_bytes(pattern(SIZE, 1))));
    let ro = Arc::new(Mutex::new(
        MemExport::from_bytes(pattern(SIZE / 2, 2)).with_read_only(true),
    ));
    let server = NbdServer::builder()
        .export("disk", disk.clone())
        .export("ro", ro.clone())
        .unix_socket(&socket)
        .tcp("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    Fixture {
        dir,
        socket,
        disk,
        ro,
        server,
    }
}

fn qemu_img_size(uri: &str) -> u64 {
    let out = run_ok(Command::new(tool("qemu-img")).args(["info", "--output=json", uri]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

#[test]
fn qemu_img_info_reports_size() {
    let f = fixture("info");
    assert_eq!(qemu_img_size(&unix_uri(&f.socket, "disk")), SIZE as u64);
    assert_eq!(qemu_img_size(&unix_uri(&f.socket, "ro")), SIZE as u64 / 2);
    // Unknown exports are an error, not a hang.
    let out = run(Command::new(tool("qemu-img")).args(["info", &unix_uri(&f.socket, "nope")]));
    assert!(!out.status.success());
    f.server.shutdown();
}

#[test]
fn qemu_img_convert_out_of_and_into_export() {
    let f = fixture("qemu-convert");
    let out = f.dir.path("out.raw");
    run_ok(Command::new(tool("qemu-img")).args([
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        &unix_uri(&f.socket, "disk"),
        out.to_str().unwrap(),
    ]));
    assert!(
        std::fs::read(&out).unwrap() == pattern(SIZE, 1),
        "copy differs"
    );

    let input = f.dir.path("in.raw");
    let new_data = pattern(SIZE, 3);
    std::fs::write(&input, &new_data).unwrap();
    run_ok(Command::new(tool("qemu-img")).args([
        "convert",
        "-n",
        "-f",
        "raw",
        "-O",
        "raw",
        input.to_str().unwrap(),
        &unix_uri(&f.socket, "disk"),
    ]));
    assert!(f.disk.lock().unwrap().data() == new_data, "export differs");
    f.server.shutdown();
}

#[test]
fn nbdinfo_shows_exports() {
    let f = fixture("nbdinfo");
    let out = run_ok(Command::new(tool("nbdinfo")).args(["--json", &unix_uri(&f.socket, "disk")]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let export = &v["exports"][0];
    assert_eq!(export["export-name"], "disk");
    assert_eq!(export["export-size"].as_u64(), Some(SIZE as u64));
    assert_eq!(export["is_read_only"], false);
    assert_eq!(export["can_flush"], true);
    assert_eq!(export["can_trim"], true);
    assert_eq!(export["can_zero"], true);
    assert_eq!(export["can_multi_conn"], true);
    assert_eq!(export["block_size_minimum"].as_u64(), Some(512));

    let out = run_ok(Command::new(tool("nbdinfo")).args(["--json", &unix_uri(&f.socket, "ro")]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exports"][0]["is_read_only"], true);

    let out =
        run_ok(Command::new(tool("nbdinfo")).args(["--list", "--json", &unix_uri(&f.socket, "")]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<_> = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["export-name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["disk", "ro"]);

    // The plain text forms work too.
    let text = run_ok(Command::new(tool("nbdinfo")).arg(unix_uri(&f.socket, "disk")));
    assert!(text.contains(&SIZE.to_string()), "{text}");
    let text = run_ok(Command::new(tool("nbdinfo")).args(["--list", &unix_uri(&f.socket, "")]));
    assert!(text.contains("disk") && text.contains("ro"), "{text}");
    f.server.shutdown();
}

#[test]
fn nbdcopy_both_directions() {
    let f = fixture("nbdcopy");
    let out = f.dir.path("out.raw");
    run_ok(
        Command::new(tool("nbdcopy")).args([&unix_uri(&f.socket, "disk"), out.to_str().unwrap()]),
    );
    assert!(
        std::fs::read(&out).unwrap() == pattern(SIZE, 1),
        "copy differs"
    );

    let input = f.dir.path("in.raw");
    let new_data = pattern(SIZE, 4);
    std::fs::write(&input, &new_data).unwrap();
    run_ok(
        Command::new(tool("nbdcopy")).args([input.to_str().unwrap(), &unix_uri(&f.socket, "disk")]),
    );
    assert!(f.disk.lock().unwrap().data() == new_data, "export differs");

    // Export to export on one server, over several connections each (multi-conn).
    let target = Arc::new(Mutex::new(MemExport::new(SIZE)));
    f.server.add_export("target", target.clone()).unwrap();
    run_ok(Command::new(tool("nbdcopy")).args([
        "--connections=4",
        &unix_uri(&f.socket, "disk"),
        &unix_uri(&f.socket, "target"),
    ]));
    assert!(
        target.lock().unwrap().data() == new_data,
        "export copy differs"
    );
    f.server.shutdown();
}

#[test]
fn tcp_loopback() {
    let f = fixture("tcp");
    let addr = f.server.tcp_addrs()[0];
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let uri = format!("nbd://{addr}/disk");
    assert_eq!(qemu_img_size(&uri), SIZE as u64);
    let out = f.dir.path("out.raw");
    run_ok(Command::new(tool("qemu-img")).args([
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        &uri,
        out.to_str().unwrap(),
    ]));
    assert!(
        std::fs::read(&out).unwrap() == pattern(SIZE, 1),
        "copy differs"
    );
    let input = f.dir.path("in.raw");
    let new_data = pattern(SIZE, 5);
    std::fs::write(&input, &new_data).unwrap();
    run_ok(Command::new(tool("nbdcopy")).args([input.to_str().unwrap(), &uri]));
    assert!(f.disk.lock().unwrap().data() == new_data, "export differs");
    let text = run_ok(Command::new(tool("nbdinfo")).args(["--size", &uri]));
    assert_eq!(text.trim(), SIZE.to_string());
    f.server.shutdown();
}

#[test]
fn read_only_export_refuses_writes() {
    let f = fixture("readonly");
    let input = f.dir.path("in.raw");
    std::fs::write(&input, pattern(SIZE / 2, 6)).unwrap();
    let uri = unix_uri(&f.socket, "ro");

    let out = run(Command::new(tool("qemu-img")).args([
        "convert",
        "-n",
        "-f",
        "raw",
        "-O",
        "raw",
        input.to_str().unwrap(),
        &uri,
    ]));
    assert!(
        !out.status.success(),
        "qemu-img wrote to a read-only export"
    );
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("read-only") || err.contains("read only") || err.contains("permission"),
        "unexpected qemu-img error: {err}"
    );

    let out = run(Command::new(tool("nbdcopy")).args([input.to_str().unwrap(), &uri]));
    assert!(!out.status.success(), "nbdcopy wrote to a read-only export");

    assert!(
        f.ro.lock().unwrap().data() == pattern(SIZE / 2, 2),
        "read-only export changed"
    );
    // Reading it still works.
    let copy = f.dir.path("ro.raw");
    run_ok(Command::new(tool("qemu-img")).args([
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        &uri,
        copy.to_str().unwrap(),
    ]));
    assert!(std::fs::read(&copy).unwrap() == pattern(SIZE / 2, 2));
    f.server.shutdown();
}

#[test]
fn two_clients_at_once() {
    let f = fixture("two-clients");
    let target = Arc::new(Mutex::new(MemExport::new(SIZE)));
    f.server.add_export("target", target.clone()).unwrap();
    let input = f.dir.path("in.raw");
    let new_data = pattern(SIZE, 7);
    std::fs::write(&input, &new_data).unwrap();
    let out = f.dir.path("out.raw");

    // One client reads `disk` while another writes `target`, both at the same time.
    let mut reader = Command::new(tool("qemu-img"))
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "raw",
            &unix_uri(&f.socket, "disk"),
            out.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let mut writer = Command::new(tool("nbdcopy"))
        .args([input.to_str().unwrap(), &unix_uri(&f.socket, "target")])
        .spawn()
        .unwrap();
    assert!(reader.wait().unwrap().success());
    assert!(writer.wait().unwrap().success());
    assert!(
        std::fs::read(&out).unwrap() == pattern(SIZE, 1),
        "copy differs"
    );
    assert!(target.lock().unwrap().data() == new_data, "export differs");
    f.server.shutdown();
    assert!(!f.socket.exists(), "socket file left behind");
}
