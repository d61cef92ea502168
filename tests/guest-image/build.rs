//! Builds the freestanding test guest (`tests/guest`) with a nested
//! `cargo build --release` and exports the path of the resulting ELF as
//! `REPRISE_GUEST_ELF`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Codegen flags of the guest; `tests/guest/.cargo/config.toml` holds the same
/// list for hand builds. Passed through `CARGO_ENCODED_RUSTFLAGS`, which wins
/// over any `.cargo/config.toml` the nested build might also pick up.
const GUEST_RUSTFLAGS: &[&str] = &["-Crelocation-model=static", "-Cforce-unwind-tables=no"];
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
const GUEST_BIN: &str = "reprise-test-guest";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let guest_dir = manifest_dir
        .join("../guest")
        .canonicalize()
        .expect("tests/guest exists");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target_dir = out_dir.join("guest-target");

    rerun_if_changed(&guest_dir.join("Cargo.toml"));
    rerun_if_changed(&guest_dir.join("Cargo.lock"));
    rerun_if_changed(&guest_dir.join("build.rs"));
    rerun_if_changed(&guest_dir.join("link.ld"));
    rerun_if_changed(&guest_dir.join(".cargo/config.toml"));
    rerun_if_changed(&guest_dir.join("src"));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guest_dir)
        .args(["build", "--release", "--locked", "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    // Nothing of the outer build may leak into the guest's: its flags, target
    // directory, profile settings, wrappers (e.g. clippy-driver) or jobserver.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("__CARGO")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
            );
        if leaks {
            cmd.env_remove(key);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", GUEST_RUSTFLAGS.join("\x1f"));
    // Our stdout carries `cargo:` directives; the nested build's goes to stderr.
    cmd.stdout(std::io::stderr());

    let status = cmd
        .status()
        .expect("failed to run cargo for the test guest");
    assert!(status.success(), "building the test guest failed: {status}");

    let elf = target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join(GUEST_BIN);
    assert!(elf.is_file(), "guest ELF missing at {}", elf.display());
    println!("cargo:rustc-env=REPRISE_GUEST_ELF={}", elf.display());
}

fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}
