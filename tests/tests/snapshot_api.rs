//! Snapshot stores through the API and `reprisectl` (list, show, delete, in any phase of a
//! VMM), and `PUT /snapshot/load` into a VMM that has no VM yet.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reprise_tests::*;
use serde_json::{json, Value};

fn snapshot(vm: &Reprise, store: &Path, id: &str, kind: &str) -> (u16, Value) {
    let (status, body) = vm.api(
        "PUT",
        "/snapshot/create",
        Some(json!({"snapshot_dir": store, "snapshot_id": id, "snapshot_type": kind})),
    );
    (status, body.unwrap_or(Value::Null))
}

/// `/snapshots[/ID]?snapshot_dir=STORE`, the store percent-encoded.
fn store_path(store: &Path, id: Option<&str>) -> String {
    reprise_tools::api_client::store_snapshots_path(store, id)
}

fn reprisectl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("reprise-tools", "reprisectl"))
        .env_remove("REPRISE_API_SOCK")
        .args(args)
        .output()
        .expect("run reprisectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ids(list: &Value) -> Vec<String> {
    list["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn snapshot_stores_are_listed_shown_and_cleaned_up_in_any_phase() {
    require_kvm();
    let scratch = Scratch::new("snapapi-store");
    // A space and a plus in the store's path exercise the query-string decoding.
    let store = scratch.path("my snaps+1");
    let vm = Reprise::with_api(&scratch);
    vm.boot_guest(
        64,
        "workload=dirty dirty.mib=4 dirty.rate=2000 dirty.seconds=30",
        json!([]),
        None,
    );
    let mut vm = vm;
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    for (id, kind) in [("base", "Full"), ("d1", "Diff"), ("d2", "Diff")] {
        let (status, body) = snapshot(&vm, &store, id, kind);
        assert_eq!(status, 201, "{body}");
    }
    std::fs::create_dir(store.join("cut.tmp")).expect("a half-written snapshot");

    // A second VMM with no VM at all answers for the same store.
    let idle_scratch = Scratch::new("snapapi-store-idle");
    let idle = Reprise::with_api(&idle_scratch);
    for vmm in [&vm, &idle] {
        let (status, list) = vmm.api("GET", &store_path(&store, None), None);
        assert_eq!(status, 200, "{list:?}");
        let list = list.expect("list");
        assert_eq!(ids(&list), ["base", "d1", "d2"]);
        let s = &list["snapshots"];
        assert_eq!(s[0]["kind"], json!("full"));
        assert!(s[0].get("parent").is_none(), "{list}");
        assert_eq!(s[2]["kind"], json!("diff"));
        assert_eq!(s[2]["parent"], json!("d1"));
        assert!(s[0]["memory_bytes"].as_u64().expect("bytes") > 0);
        assert!(s[1]["created"].as_u64() >= s[0]["created"].as_u64());
        assert_eq!(list["ignored"][0]["name"], json!("cut.tmp"));
        assert_eq!(list["ignored"][0]["partial"], json!(true));
    }
    assert_eq!(idle.state(), "Not started");

    let (status, info) = idle.api("GET", &store_path(&store, Some("d2")), None);
    assert_eq!(status, 200);
    let info = info.expect("info");
    assert_eq!(info["chain"], json!(["base", "d1", "d2"]));
    assert_eq!(info["dependents"], json!([]));
    assert_eq!(info["manifest"]["parent"], json!("d1"));
    assert_eq!(
        info["manifest"]["vm_config"]["machine-config"]["mem_size_mib"],
        json!(64)
    );
    let (status, _) = idle.api("GET", &store_path(&store, Some("nope")), None);
    assert_eq!(status, 404);
    let (status, body) = idle.api("GET", &store_path(&store, Some("cut.tmp")), None);
    assert_eq!(status, 400, "{body:?}");
    let (status, body) = idle.api("GET", &store_path(&scratch.path("nothing"), None), None);
    assert_eq!(status, 404, "{body:?}");
    assert!(!scratch.path("nothing").exists(), "a store was created");
    let (status, body) = idle.api("GET", "/snapshots", None);
    assert_eq!(status, 400);
    assert!(body.expect("error")["fault_message"]
        .as_str()
        .expect("message")
        .contains("snapshot_dir"));

    // Deleting: refused while a diff depends on it, by name; 404 for what is not there.
    let (status, body) = idle.api("DELETE", &store_path(&store, Some("d1")), None);
    assert_eq!(status, 409, "{body:?}");
    let message = body.expect("error")["fault_message"].to_string();
    assert!(message.contains("d2"), "{message}");
    let (status, _) = idle.api("DELETE", &store_path(&store, Some("nope")), None);
    assert_eq!(status, 404);
    // The running VM's own latest snapshot goes: its next snapshot cannot be a diff of it.
    let (status, body) = vm.api("DELETE", &store_path(&store, Some("d2")), None);
    assert_eq!(status, 204, "{body:?}");
    let (status, body) = snapshot(&vm, &store, "d3", "Diff");
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("full"), "{body}");
    let (status, body) = snapshot(&vm, &store, "full2", "Full");
    assert_eq!(status, 201, "{body}");
    let (status, body) = snapshot(&vm, &store, "d3", "Diff");
    assert_eq!(status, 201, "{body}");
    let (_, info) = idle.api("GET", &store_path(&store, Some("d3")), None);
    assert_eq!(info.expect("info")["chain"], json!(["full2", "d3"]));

    // reprisectl reads and cleans the store on its own, with no VMM.
    let dir = store.to_str().expect("utf-8");
    let (ok, out, err) = reprisectl(&["snapshot", "list", "--dir", dir]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("base: full, taken "), "{out}");
    assert!(lines[1].starts_with("d1: diff of base, taken "), "{out}");
    assert!(lines[2].starts_with("full2: full"), "{out}");
    assert!(lines[3].starts_with("d3: diff of full2"), "{out}");
    assert!(lines[4].starts_with("ignored cut.tmp: "), "{out}");
    let (ok, out, err) = reprisectl(&["snapshot", "show", "--dir", dir, "d1"]);
    assert!(ok, "{err}");
    assert!(out.contains("chain: base -> d1"), "{out}");
    let (ok, _, err) = reprisectl(&["snapshot", "delete", "--dir", dir, "base"]);
    assert!(!ok && err.contains("d1"), "{err}");
    for id in ["d1", "base"] {
        let (ok, out, err) = reprisectl(&["snapshot", "delete", "--dir", dir, id]);
        assert!(ok, "{err}");
        assert_eq!(out, format!("deleted snapshot {id} from {dir}\n"));
    }
    let (ok, out, err) = reprisectl(&["snapshot", "list", "--dir", dir, "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(ids(&list), ["full2", "d3"]);
    // And through a VMM's API.
    let idle_sock = idle.api_sock.clone().expect("socket");
    let sock = idle_sock.to_str().expect("utf-8");
    let (ok, _, err) = reprisectl(&[
        "--sock", sock, "snapshot", "delete", "--dir", dir, "d3", "--api",
    ]);
    assert!(ok, "{err}");
    let (status, list) = vm.api("GET", &store_path(&store, None), None);
    assert_eq!(status, 200);
    assert_eq!(ids(&list.expect("list")), ["full2"]);

    // The VM ran on through all of this.
    vm.wait_serial("dirty: second=3 ", Duration::from_secs(30));
    assert_eq!(vm.state(), "Running");
}

/// Flips a byte in the middle of `file`.
fn damage(file: &Path) {
    let mut bytes = std::fs::read(file).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(file, bytes).expect("write");
}

#[test]
fn a_snapshot_is_loaded_into_an_empty_vmm_paused_then_resumed() {
    require_kvm();
    let scratch = Scratch::new("snapapi-load");
    let store = scratch.path("snapshots");
    let vm = Reprise::with_api(&scratch);
    vm.boot_guest(
        64,
        "workload=dirty dirty.mib=8 dirty.rate=3000 dirty.seconds=4",
        json!([]),
        None,
    );
    let mut vm = vm;
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    let (status, body) = snapshot(&vm, &store, "mid", "Full");
    assert_eq!(status, 201, "{body}");
    let original = vm.wait_serial("reprise-guest: done", Duration::from_secs(30));
    // A damaged copy, named as itself.
    let bad = store.join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    for f in ["manifest.json", "state.bin", "memory.full"] {
        std::fs::copy(store.join("mid").join(f), bad.join(f)).expect("copy");
    }
    let text = std::fs::read_to_string(bad.join("manifest.json")).expect("manifest");
    let mut m: snapshot::Manifest = serde_json::from_str(&text).expect("json");
    m.id = "bad".into();
    m.seal();
    std::fs::write(
        bad.join("manifest.json"),
        serde_json::to_vec(&m).expect("json"),
    )
    .expect("write");
    damage(&bad.join("state.bin"));

    let clone_scratch = Scratch::new("snapapi-load-clone");
    let mut clone = Reprise::with_api(&clone_scratch);
    let log = format!("file:{}", clone.serial_log.display());
    // Missing and damaged snapshots are 400 with the restore error; the VMM stays usable.
    for (path, needle) in [
        (store.join("nope"), "no snapshot directory"),
        (bad.clone(), "state.bin"),
    ] {
        let (status, body) = clone.api(
            "PUT",
            "/snapshot/load",
            Some(json!({"snapshot_path": path, "serial_output": log})),
        );
        assert_eq!(status, 400, "{body:?}");
        let message = body.expect("error")["fault_message"].to_string();
        assert!(
            message.contains("restore from") && message.contains(needle),
            "{message}"
        );
        assert_eq!(clone.state(), "Not started");
    }
    let (status, body) = clone.api(
        "PUT",
        "/snapshot/load",
        Some(json!({"snapshot_path": store.join("mid"), "vm_id": "../x"})),
    );
    assert_eq!(status, 400, "{body:?}");

    let body = json!({"snapshot_path": store.join("mid"), "serial_output": log, "resume": false});
    let (status, resp) = clone.api("PUT", "/snapshot/load", Some(body.clone()));
    assert_eq!(status, 204, "{resp:?}\n{}", clone.stderr());
    assert_eq!(clone.state(), "Paused");
    let (status, _) = clone.api("PUT", "/snapshot/load", Some(body));
    assert_eq!(status, 409, "a second load");
    let (status, _) = clone.api(
        "PUT",
        "/machine-config",
        Some(json!({"vcpu_count": 1, "mem_size_mib": 64})),
    );
    assert_eq!(status, 409);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        clone.serial().is_empty(),
        "the paused VM ran: {}",
        clone.serial()
    );
    clone.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    let restored = clone.wait_serial("reprise-guest: done", Duration::from_secs(30));
    assert!(
        original.ends_with(&restored) && restored.contains("dirty: second="),
        "original:\n{original}\nrestored:\n{restored}"
    );
    assert!(
        clone.stderr().contains("vCPUs paused until resumed"),
        "{}",
        clone.stderr()
    );

    // Resumed at once (the default), with the time from request to running vCPUs logged.
    let third_scratch = Scratch::new("snapapi-load-third");
    let mut third = Reprise::with_api(&third_scratch);
    let log = format!("file:{}", third.serial_log.display());
    let (status, resp) = third.api(
        "PUT",
        "/snapshot/load",
        Some(json!({"snapshot_path": store.join("mid"), "serial_output": log})),
    );
    assert_eq!(status, 204, "{resp:?}");
    let again = third.wait_serial("reprise-guest: done", Duration::from_secs(30));
    assert_eq!(again, restored);
    assert!(
        third.stderr().contains("loaded: vCPUs running")
            && third.stderr().contains("ms after the request"),
        "{}",
        third.stderr()
    );

    // A VMM where something was configured does not load.
    let fourth_scratch = Scratch::new("snapapi-load-fourth");
    let fourth = Reprise::with_api(&fourth_scratch);
    fourth.api_ok(
        "PUT",
        "/machine-config",
        json!({"vcpu_count": 1, "mem_size_mib": 64}),
    );
    let (status, body) = fourth.api(
        "PUT",
        "/snapshot/load",
        Some(json!({"snapshot_path": store.join("mid")})),
    );
    assert_eq!(status, 409, "{body:?}");
    assert!(body.expect("error")["fault_message"]
        .as_str()
        .expect("message")
        .contains("configured"));
}

/// `vm_time_ns` and `guest_progress` from `GET /`.
fn clock(vm: &Reprise) -> (u64, u64) {
    let (status, body) = vm.api("GET", "/", None);
    assert_eq!(status, 200);
    let body = body.expect("instance info");
    let field = |name: &str| {
        body[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    (field("vm_time_ns"), field("guest_progress"))
}

#[test]
fn vm_time_stops_while_paused_and_a_restored_vm_continues_it() {
    require_kvm();
    let scratch = Scratch::new("snapapi-clock");
    let store = scratch.path("snapshots");
    let mut vm = Reprise::with_api(&scratch);
    vm.boot_guest(
        64,
        "workload=dirty dirty.mib=8 dirty.rate=3000 dirty.seconds=4",
        json!([]),
        None,
    );
    vm.wait_serial("dirty: second=1 ", Duration::from_secs(30));
    let (running_time, running_progress) = clock(&vm);
    assert!(
        running_time >= 1_000_000_000,
        "{running_time} ns after a guest second"
    );
    assert!(running_progress > 0);
    vm.api_ok("PATCH", "/vm", json!({"state": "Paused"}));
    let paused = clock(&vm);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(clock(&vm), paused, "time or progress moved while paused");
    let (status, body) = snapshot(&vm, &store, "cut", "Full");
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        clock(&vm),
        paused,
        "the snapshot of a paused VM moved its clock"
    );
    vm.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    vm.wait_serial("dirty: second=2 ", Duration::from_secs(30));
    assert!(clock(&vm).0 > paused.0 && clock(&vm).1 > paused.1);
    drop(vm);

    // Loaded paused: exactly the snapshot's values; resumed: they grow from there.
    let clone_scratch = Scratch::new("snapapi-clock-clone");
    let mut clone = Reprise::with_api(&clone_scratch);
    let log = format!("file:{}", clone.serial_log.display());
    let (status, resp) = clone.api(
        "PUT",
        "/snapshot/load",
        Some(json!({"snapshot_path": store.join("cut"), "serial_output": log, "resume": false})),
    );
    assert_eq!(status, 204, "{resp:?}");
    assert_eq!(clock(&clone), paused);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(clock(&clone), paused);
    clone.api_ok("PATCH", "/vm", json!({"state": "Resumed"}));
    clone.wait_serial("dirty: second=2 ", Duration::from_secs(30));
    let (time, progress) = clock(&clone);
    assert!(
        time > paused.0 && progress > paused.1,
        "{time} {progress} vs {paused:?}"
    );
}
