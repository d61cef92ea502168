//! Volumes interoperate with the standard tools: `qemu-img` and `nbdcopy` move data into
//! and out of a volume served over NBD byte for byte, and `reprise-volume` import/export
//! agrees with `qemu-img`'s raw images.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reprise_tests::*;

fn tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed (Debian packages qemu-utils, libnbd-bin): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn random_image(path: &Path, len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = vec![0u8; len];
    // Data with holes: every fourth 64 KiB stretch stays zero.
    for (i, b) in data.iter_mut().enumerate() {
        if (i >> 16) % 4 != 3 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
    }
    std::fs::write(path, &data).expect("write image");
    data
}

struct Server(Child);

impl Drop for Server {
    /// An orderly stop (SIGTERM), as an operator would do it.
    fn drop(&mut self) {
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn serve(sock: &Path, spec: &Path) -> Server {
    let child = Command::new(binary("reprise-tools", "reprise-volume"))
        .args([
            "serve-nbd",
            "--socket",
            sock.to_str().expect("utf-8"),
            spec.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("serve-nbd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "NBD socket never appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    Server(child)
}

#[test]
fn qemu_img_and_nbdcopy_round_trips_through_a_volume_are_byte_identical() {
    let scratch = Scratch::new("vol-nbd");
    let size = 12 << 20;
    let source = scratch.path("source.raw");
    let data = random_image(&source, size, 99);
    let volume = scratch.path("store/volumes/nbdvol");
    volume_tool(&["create", volume.to_str().expect("utf-8"), "--size", "12M"]);
    let sock = scratch.path("nbd.sock");
    let url = format!("nbd+unix:///nbdvol?socket={}", sock.display());
    {
        let _server = serve(&sock, &volume);
        // Into the volume with qemu-img, out with nbdcopy, and the other way round.
        tool(
            "qemu-img",
            &[
                "convert",
                "-n",
                "-f",
                "raw",
                "-O",
                "raw",
                source.to_str().expect("utf-8"),
                &url,
            ],
        );
        let out1 = scratch.path("out-nbdcopy.raw");
        tool("nbdcopy", &[&url, out1.to_str().expect("utf-8")]);
        assert!(
            std::fs::read(&out1).expect("read") == data,
            "qemu-img in, nbdcopy out: bytes differ"
        );
        let source2 = scratch.path("source2.raw");
        let data2 = random_image(&source2, size, 7);
        tool(
            "nbdcopy",
            &["--flush", source2.to_str().expect("utf-8"), &url],
        );
        let out2 = scratch.path("out-qemu.raw");
        tool(
            "qemu-img",
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "raw",
                &url,
                out2.to_str().expect("utf-8"),
            ],
        );
        assert!(
            std::fs::read(&out2).expect("read") == data2,
            "nbdcopy in, qemu-img out: bytes differ"
        );
        tool("qemu-img", &["info", &url]);
    }
    // The data survived the server (flushed) and checks clean.
    volume_tool(&["check", volume.to_str().expect("utf-8"), "--data"]);
}

#[test]
fn import_and_export_raw_agree_with_qemu_img() {
    let scratch = Scratch::new("vol-raw");
    let raw = scratch.path("made-by-qemu-img.raw");
    tool(
        "qemu-img",
        &["create", "-f", "raw", raw.to_str().expect("utf-8"), "8M"],
    );
    // Put data in the middle with QEMU's own I/O.
    tool(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0xab 3M 1M",
            raw.to_str().expect("utf-8"),
        ],
    );
    let expected = std::fs::read(&raw).expect("read");
    assert!(expected[3 << 20..4 << 20].iter().all(|&b| b == 0xab));
    assert!(expected[..3 << 20].iter().all(|&b| b == 0));
    let volume = scratch.path("store/volumes/imported");
    volume_tool(&[
        "import-raw",
        raw.to_str().expect("utf-8"),
        volume.to_str().expect("utf-8"),
        "--quiet",
    ]);
    let back = scratch.path("exported.raw");
    volume_tool(&[
        "export-raw",
        volume.to_str().expect("utf-8"),
        back.to_str().expect("utf-8"),
        "--quiet",
    ]);
    tool(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            raw.to_str().expect("utf-8"),
            back.to_str().expect("utf-8"),
        ],
    );
    assert!(std::fs::read(&back).expect("read") == expected);
    // A size that is not a multiple of 512 is refused by name.
    let odd = scratch.path("odd.raw");
    std::fs::write(&odd, vec![1u8; 1000]).expect("odd");
    let out = Command::new(binary("reprise-tools", "reprise-volume"))
        .args([
            "import-raw",
            odd.to_str().expect("utf-8"),
            scratch.path("store/volumes/odd").to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("odd.raw") && err.contains("512"), "{err}");
}
