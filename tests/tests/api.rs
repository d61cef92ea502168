//! The API over the Unix socket: configure, start, pause (no guest progress), resume, stop,
//! and bad requests answered with a 4xx naming the problem while the VMM keeps serving.

use std::time::Duration;

use reprise_tests::*;
use serde_json::json;

fn fault(body: &Option<serde_json::Value>) -> String {
    body.as_ref()
        .and_then(|b| b["fault_message"].as_str())
        .unwrap_or("")
        .to_string()
}

fn configure_ticks(vm: &Reprise, scratch: &Scratch) {
    vm.api_ok(
        "PUT",
        "/machine-config",
        json!({"vcpu_count": 1, "mem_size_mib": 64}),
    );
    vm.api_ok(
        "PUT",
        "/boot-source",
        json!({"kernel_image_path": guest_elf(), "boot_args": "workload=ticks ticks.hz=100 ticks.every=10"}),
    );
    let img = scratch.path("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).expect("disk");
    vm.api_ok(
        "PUT",
        "/drives/disk0",
        json!({"drive_id": "disk0", "path_on_host": img}),
    );
}

fn tick_count(serial: &str) -> usize {
    lines_with(serial, "ticks: n=").len()
}

#[test]
fn lifecycle_configure_start_pause_resume_stop() {
    require_kvm();
    let scratch = Scratch::new("api-life");
    let mut vm = Reprise::with_api(&scratch);
    assert_eq!(vm.state(), "Not started");
    configure_ticks(&vm, &scratch);
    // Route serial output to the file the helper reads.
    let cfg_serial = format!("file:{}", vm.serial_log.display());
    vm.api_ok("PUT", "/serial", json!({"output": cfg_serial}));
    let (status, cfg) = vm.api("GET", "/vm/config", None);
    assert_eq!(status, 200);
    let cfg = cfg.expect("config body");
    assert_eq!(cfg["machine-config"]["mem_size_mib"], 64);
    assert_eq!(cfg["drives"][0]["drive_id"], "disk0");
    assert_eq!(cfg["serial"]["output"], cfg_serial);
    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    assert_eq!(vm.state(), "Running");
    vm.wait_serial("ticks: n=30", Duration::from_secs(30));

    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));
    assert_eq!(vm.state(), "Paused");
    // Let in-flight output land, then check that nothing more arrives while paused.
    std::thread::sleep(Duration::from_millis(100));
    let before = tick_count(&vm.serial());
    std::thread::sleep(Duration::from_millis(500));
    let after = tick_count(&vm.serial());
    assert_eq!(before, after, "the guest made progress while paused");
    // Pausing again is harmless.
    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));

    vm.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    assert_eq!(vm.state(), "Running");
    let target = format!("ticks: n={}", (after + 5) * 10);
    vm.wait_serial(&target, Duration::from_secs(30));

    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStop"}));
    assert_eq!(vm.state(), "Stopped");
    let (status, body) = vm.api("PATCH", "/vm", Some(json!({"state": "Paused"})));
    assert_eq!(status, 409, "{body:?}");
    assert!(fault(&body).contains("stopped"), "{body:?}");
    let (status, body) = vm.api(
        "PUT",
        "/actions",
        Some(json!({"action_type": "InstanceStart"})),
    );
    assert_eq!(status, 409, "{body:?}");
    let (_, info) = vm.api("GET", "/", None);
    assert_eq!(info.expect("info")["exit_reason"], "stopped by request");
}

#[test]
fn bad_requests_get_clear_4xx_and_the_vmm_keeps_serving() {
    require_kvm();
    let scratch = Scratch::new("api-bad");
    let vm = Reprise::with_api(&scratch);
    let sock = vm.api_sock.clone().expect("sock");

    // Malformed JSON.
    let (status, body) = reprise_tools::api_client::request_raw(
        &sock,
        "PUT",
        "/machine-config",
        b"{\"vcpu_count\": 1,",
    )
    .expect("request");
    assert_eq!(status, 400, "{body:?}");
    // Unknown field.
    let (status, body) = vm.api(
        "PUT",
        "/machine-config",
        Some(json!({"vcpu_count": 1, "mem_size_mib": 64, "turbo": true})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("turbo"), "{body:?}");
    // Wrong type.
    let (status, body) = vm.api(
        "PUT",
        "/machine-config",
        Some(json!({"vcpu_count": "two", "mem_size_mib": 64})),
    );
    assert_eq!(status, 400);
    assert!(
        fault(&body).contains("vcpu_count") || fault(&body).contains("invalid type"),
        "{body:?}"
    );
    // Out of range.
    let (status, body) = vm.api(
        "PUT",
        "/machine-config",
        Some(json!({"vcpu_count": 0, "mem_size_mib": 64})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("vcpu_count"), "{body:?}");
    let (status, body) = vm.api(
        "PUT",
        "/machine-config",
        Some(json!({"vcpu_count": 1, "mem_size_mib": 1})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("mem_size_mib"), "{body:?}");
    // Missing kernel file.
    let (status, body) = vm.api(
        "PUT",
        "/boot-source",
        Some(json!({"kernel_image_path": "/nonexistent/vmlinux"})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("/nonexistent/vmlinux"), "{body:?}");
    // Drive id mismatch between path and body; missing image.
    let (status, _) = vm.api(
        "PUT",
        "/drives/a",
        Some(json!({"drive_id": "b", "path_on_host": "/dev/null"})),
    );
    assert_eq!(status, 400);
    let (status, body) = vm.api(
        "PUT",
        "/drives/a",
        Some(json!({"drive_id": "a", "path_on_host": "/nonexistent.img"})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("/nonexistent.img"), "{body:?}");
    // Network interface without a backend; bad MAC.
    let (status, body) = vm.api(
        "PUT",
        "/network-interfaces/n0",
        Some(json!({"iface_id": "n0"})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("backend"), "{body:?}");
    let (status, body) = vm.api(
        "PUT",
        "/network-interfaces/n0",
        Some(json!({"iface_id": "n0", "host_dev_name": "t0", "guest_mac": "zz"})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("guest_mac"), "{body:?}");
    // Wrong state: pause, resume or stop before start; start without a kernel.
    for (method, path, body) in [
        ("PATCH", "/vm", json!({"state": "Paused"})),
        ("PATCH", "/vm", json!({"state": "Resumed"})),
        ("PUT", "/actions", json!({"action_type": "InstanceStop"})),
    ] {
        let (status, resp) = vm.api(method, path, Some(body));
        assert_eq!(status, 409, "{method} {path}: {resp:?}");
        assert!(fault(&resp).contains("not been started"), "{resp:?}");
    }
    let (status, body) = vm.api(
        "PUT",
        "/actions",
        Some(json!({"action_type": "InstanceStart"})),
    );
    assert_eq!(status, 400);
    assert!(fault(&body).contains("boot source"), "{body:?}");
    // Unknown action, unknown route, wrong method.
    let (status, _) = vm.api("PUT", "/actions", Some(json!({"action_type": "Explode"})));
    assert_eq!(status, 400);
    let (status, _) = vm.api("GET", "/no/such/route", None);
    assert_eq!(status, 404);
    let (status, _) = vm.api("DELETE", "/machine-config", None);
    assert_eq!(status, 405);

    // Now boot, and check that configuration changes after start are refused.
    configure_ticks(&vm, &scratch);
    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    let (status, body) = vm.api(
        "PUT",
        "/drives/late",
        Some(json!({"drive_id": "late", "path_on_host": scratch.path("disk.img")})),
    );
    assert_eq!(status, 409, "{body:?}");
    assert!(fault(&body).contains("started"), "{body:?}");
    let (status, _) = vm.api(
        "PUT",
        "/machine-config",
        Some(json!({"vcpu_count": 2, "mem_size_mib": 64})),
    );
    assert_eq!(status, 409);
    // Still serving.
    assert_eq!(vm.state(), "Running");
}

#[test]
fn sigterm_stops_the_vm_and_removes_the_socket() {
    require_kvm();
    let scratch = Scratch::new("api-term");
    let mut vm = Reprise::with_api(&scratch);
    configure_ticks(&vm, &scratch);
    vm.api_ok(
        "PUT",
        "/serial",
        json!({"output": format!("file:{}", vm.serial_log.display())}),
    );
    vm.api_ok("PUT", "/actions", json!({"action_type": "InstanceStart"}));
    vm.wait_serial("ticks: n=10", Duration::from_secs(30));
    // SAFETY: sending SIGTERM to the child this test started.
    let r = unsafe { libc::kill(vm.child.id() as i32, libc::SIGTERM) };
    assert_eq!(r, 0);
    let status = vm.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", vm.stderr());
    assert!(
        !vm.api_sock.as_ref().expect("sock").exists(),
        "the API socket was left behind"
    );
    assert!(
        vm.stderr().contains("VM stopped: stopped by request"),
        "{}",
        vm.stderr()
    );
}
