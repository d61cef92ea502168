//! Dispatch tests of the drive routes: status, patch (resize and I/O limits) and snapshots.

use std::path::PathBuf;

use blockstore::limits::{Bucket, Limits};
use serde_json::{json, Value};

use super::mock::{Call, MockControl, COUNTERS, DEFAULT_DRIVE_SIZE, FIRST_SNAPSHOT_TIME};
use super::tests::{body_json, fault, send, JSON};
use super::*;
use crate::api::{DriveSnapshot, DriveStatus};

const RAW: &str = r#"{"drive_id": "root", "path_on_host": "/img/root.raw"}"#;
const VOLUME: &str = r#"{"drive_id": "data", "volume_path": "/store/volumes/data",
    "limits": {"iops": {"rate": 100, "burst": 10}, "write_bps": {"rate": 1048576}}}"#;

/// A mock with the raw drive `root` and the volume drive `data`.
fn with_drives() -> MockControl {
    let control = MockControl::default();
    assert_eq!(send(&control, "PUT", "/drives/root", RAW).status, 204);
    assert_eq!(send(&control, "PUT", "/drives/data", VOLUME).status, 204);
    control
}

/// `with_drives`, started.
fn running() -> MockControl {
    let control = with_drives();
    let start = r#"{"action_type": "InstanceStart"}"#;
    assert_eq!(send(&control, "PUT", "/actions", start).status, 204);
    control
}

fn status(control: &MockControl, id: &str) -> DriveStatus {
    let response = send(control, "GET", &format!("/drives/{id}"), "");
    assert_eq!(response.status, 200, "{:?}", response.body);
    serde_json::from_value(body_json(&response)).expect("a DriveStatus")
}

/// The calls after the setup's drives (and start).
fn calls_after(control: &MockControl, setup: usize) -> Vec<Call> {
    control.calls()[setup..].to_vec()
}

fn bucket(rate: u64, burst: u64) -> Option<Bucket> {
    Some(Bucket { rate, burst })
}

#[test]
fn put_drive_takes_a_volume_and_limits() {
    let control = with_drives();
    let calls = control.calls();
    assert_eq!(
        calls[1],
        Call::Drive(DriveConfig {
            drive_id: "data".into(),
            path_on_host: None,
            volume_path: Some(PathBuf::from("/store/volumes/data")),
            is_read_only: false,
            io_direct: false,
            limits: Some(Limits {
                iops: bucket(100, 10),
                write_bps: bucket(1 << 20, 0),
                ..Default::default()
            }),
        })
    );
    let config = body_json(&send(&control, "GET", "/vm/config", ""));
    assert_eq!(
        config["drives"][0],
        json!({"drive_id": "root", "path_on_host": "/img/root.raw", "is_read_only": false, "io_direct": false})
    );
    assert_eq!(
        config["drives"][1]["limits"]["iops"],
        json!({"rate": 100, "burst": 10})
    );

    let bad =
        r#"{"drive_id": "x", "path_on_host": "/i", "limits": {"iops": {"rate": 1}, "ops": {}}}"#;
    let response = send(&control, "PUT", "/drives/x", bad);
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("unknown field `ops`"),
        "{}",
        fault(&response)
    );
    assert_eq!(control.calls().len(), 2, "nothing reached the controller");
}

#[test]
fn drive_status_before_and_after_start() {
    let control = with_drives();
    let root = status(&control, "root");
    assert_eq!(
        root,
        DriveStatus {
            drive_id: "root".into(),
            backend: "raw".into(),
            path: "/img/root.raw".into(),
            capacity_bytes: DEFAULT_DRIVE_SIZE,
            read_only: false,
            limits: Limits::default(),
            counters: None,
        }
    );
    let response = send(&control, "GET", "/drives/root", "");
    assert_eq!(
        body_json(&response),
        json!({"drive_id": "root", "backend": "raw", "path": "/img/root.raw",
               "capacity_bytes": DEFAULT_DRIVE_SIZE, "read_only": false, "limits": {}}),
        "no counters before start, and unset limits are left out"
    );
    control.set_drive_size("data", 8 << 20);
    let data = status(&control, "data");
    assert_eq!(data.capacity_bytes, 8 << 20);
    assert_eq!(data.backend, "volume");
    assert_eq!(data.path, "/store/volumes/data");
    assert_eq!(data.limits.iops, bucket(100, 10));

    let start = r#"{"action_type": "InstanceStart"}"#;
    assert_eq!(send(&control, "PUT", "/actions", start).status, 204);
    assert_eq!(status(&control, "data").counters, Some(COUNTERS));
    assert_eq!(
        calls_after(&control, 2),
        vec![
            Call::DriveStatus("root".into()),
            Call::DriveStatus("root".into()),
            Call::DriveStatus("data".into()),
            Call::Start,
            Call::DriveStatus("data".into()),
        ]
    );
}

#[test]
fn drive_status_errors() {
    let control = with_drives();
    let response = send(&control, "GET", "/drives/nope", "");
    assert_eq!(response.status, 404);
    assert_eq!(fault(&response), "there is no drive `nope`");

    let response = send(&control, "GET", "/drives/root", "{}");
    assert_eq!(response.status, 400, "GET takes no body");
    let response = send(&control, "GET", "/drives/bad%zz", "");
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("drive_id"),
        "{}",
        fault(&response)
    );
    assert_eq!(
        control.calls().len(),
        3,
        "only the 404 reached the controller"
    );
}

#[test]
fn patch_limits_before_start_and_while_running() {
    let control = with_drives();
    let patch = r#"{"drive_id": "root", "limits": {"bps": {"rate": 4096, "burst": 8192}}}"#;
    assert_eq!(
        send(&control, "PATCH", "/drives/root", patch),
        ApiResponse::no_content()
    );
    let limits = Limits {
        bps: bucket(4096, 8192),
        ..Default::default()
    };
    assert_eq!(
        control.calls()[2],
        Call::PatchDrive(DrivePatch {
            drive_id: "root".into(),
            size_bytes: None,
            allow_shrink: false,
            discard_data: false,
            limits: Some(limits),
        })
    );
    assert_eq!(status(&control, "root").limits, limits);

    let start = r#"{"action_type": "InstanceStart"}"#;
    assert_eq!(send(&control, "PUT", "/actions", start).status, 204);
    let patch = r#"{"drive_id": "data", "limits": {}}"#;
    assert_eq!(send(&control, "PATCH", "/drives/data", patch).status, 204);
    assert!(status(&control, "data").limits.is_unlimited());
    let config = body_json(&send(&control, "GET", "/vm/config", ""));
    assert!(config["drives"][1].get("limits").is_none(), "{config}");
}

#[test]
fn resize_needs_a_running_vm_and_allow_shrink_to_shrink() {
    let control = with_drives();
    let grow = r#"{"drive_id": "root", "size_bytes": 2147483648}"#;
    let response = send(&control, "PATCH", "/drives/root", grow);
    assert_eq!(response.status, 409, "resizing before start");

    let start = r#"{"action_type": "InstanceStart"}"#;
    assert_eq!(send(&control, "PUT", "/actions", start).status, 204);
    assert_eq!(send(&control, "PATCH", "/drives/root", grow).status, 204);
    assert_eq!(status(&control, "root").capacity_bytes, 2 << 30);

    let shrink = r#"{"drive_id": "root", "size_bytes": 1048576}"#;
    let response = send(&control, "PATCH", "/drives/root", shrink);
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("allow_shrink"),
        "{}",
        fault(&response)
    );
    let shrink = r#"{"drive_id": "root", "size_bytes": 1048576, "allow_shrink": true, "discard_data": true}"#;
    assert_eq!(send(&control, "PATCH", "/drives/root", shrink).status, 204);
    assert_eq!(status(&control, "root").capacity_bytes, 1 << 20);

    let odd = r#"{"drive_id": "root", "size_bytes": 1000}"#;
    let response = send(&control, "PATCH", "/drives/root", odd);
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("multiple of 512"),
        "{}",
        fault(&response)
    );

    let stop = r#"{"action_type": "InstanceStop"}"#;
    assert_eq!(send(&control, "PUT", "/actions", stop).status, 204);
    let response = send(&control, "PATCH", "/drives/root", grow);
    assert_eq!(response.status, 409, "resizing after stop");
    let response = send(&control, "PATCH", "/drives/nope", r#"{"drive_id": "nope"}"#);
    assert_eq!(response.status, 404);
}

#[test]
fn patch_path_and_body_ids_must_agree() {
    let control = with_drives();
    let response = send(
        &control,
        "PATCH",
        "/drives/root",
        r#"{"drive_id": "data", "limits": {}}"#,
    );
    assert_eq!(response.status, 400);
    let message = fault(&response);
    assert!(
        message.contains("`root`") && message.contains("`data`"),
        "{message}"
    );
    let response = send(&control, "PATCH", "/drives/root", r#"{"limits": {}}"#);
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("missing field `drive_id`"));
    let response = send(&control, "PATCH", "/drives/root", "");
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("DrivePatch"),
        "{}",
        fault(&response)
    );
    assert_eq!(control.calls().len(), 2, "nothing reached the controller");
}

#[test]
fn patch_rejects_unknown_fields_and_wrong_types_by_name() {
    let control = with_drives();
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{"drive_id": "root", "size": 512}"#,
            &["unknown field `size`"],
        ),
        (
            r#"{"drive_id": "root", "limits": {"iops": {"rate": 1}, "iopz": {"rate": 1}}}"#,
            &["unknown field `iopz`", "limits"],
        ),
        (
            r#"{"drive_id": "root", "limits": {"iops": {"rate": 1, "brust": 2}}}"#,
            &["unknown field `brust`", "limits.iops"],
        ),
        (
            r#"{"drive_id": "root", "size_bytes": "1G"}"#,
            &["size_bytes"],
        ),
        (
            r#"{"drive_id": "root", "size_bytes": -512}"#,
            &["size_bytes"],
        ),
        (
            r#"{"drive_id": "root", "allow_shrink": "yes"}"#,
            &["allow_shrink", "boolean"],
        ),
        (r#"{"drive_id": "root", "limits": []}"#, &["limits"]),
        (
            r#"{"drive_id": "root", "limits": {"bps": {"rate": 1.5}}}"#,
            &["limits.bps.rate"],
        ),
        (
            r#"{"drive_id": "root", "limits": {"bps": {"burst": 1}}}"#,
            &["limits.bps", "missing field `rate`"],
        ),
        (r#"{"drive_id": 7}"#, &["drive_id"]),
    ];
    for (body, expected) in cases {
        let response = send(&control, "PATCH", "/drives/root", body);
        assert_eq!(response.status, 400, "{body}");
        let message = fault(&response);
        for part in *expected {
            assert!(message.contains(part), "{body}: {message}");
        }
    }
    assert_eq!(control.calls().len(), 2, "nothing reached the controller");

    // Well-formed but out of range: the controller rejects it.
    let zero = r#"{"drive_id": "root", "limits": {"read_iops": {"rate": 0}}}"#;
    let response = send(&control, "PATCH", "/drives/root", zero);
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("read_iops"),
        "{}",
        fault(&response)
    );
}

#[test]
fn snapshots_of_a_running_volume() {
    let control = running();
    let response = send(&control, "GET", "/drives/data/snapshots", "");
    assert_eq!(response.status, 200);
    assert_eq!(body_json(&response), json!([]));

    let response = send(&control, "PUT", "/drives/data/snapshots/base", "");
    assert_eq!(response.status, 201);
    let first: DriveSnapshot = serde_json::from_value(body_json(&response)).unwrap();
    assert_eq!(
        first,
        DriveSnapshot {
            name: "base".into(),
            created: FIRST_SNAPSHOT_TIME,
            size_bytes: DEFAULT_DRIVE_SIZE,
        }
    );
    let response = send(&control, "PUT", "/drives/data/snapshots/v1.0_rc-2", "{}");
    assert_eq!(response.status, 201, "{:?}", response.body);
    let response = send(&control, "PUT", "/drives/data/snapshots/v%2E2", " { } ");
    assert_eq!(response.status, 201, "escapes are decoded");
    assert_eq!(body_json(&response)["name"], json!("v.2"));

    let response = send(&control, "GET", "/drives/data/snapshots", "");
    let list: Vec<DriveSnapshot> = serde_json::from_value(body_json(&response)).unwrap();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["base", "v1.0_rc-2", "v.2"]);
    assert_eq!(list[0], first);

    assert_eq!(
        calls_after(&control, 3),
        vec![
            Call::DriveSnapshots("data".into()),
            Call::SnapshotDrive("data".into(), "base".into()),
            Call::SnapshotDrive("data".into(), "v1.0_rc-2".into()),
            Call::SnapshotDrive("data".into(), "v.2".into()),
            Call::DriveSnapshots("data".into()),
        ]
    );
}

#[test]
fn snapshot_request_bodies() {
    let control = running();
    let response = send(
        &control,
        "PUT",
        "/drives/data/snapshots/a",
        r#"{"label": "x"}"#,
    );
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("unknown field `label`"),
        "{}",
        fault(&response)
    );
    let response = send(&control, "PUT", "/drives/data/snapshots/a", "{");
    assert_eq!(response.status, 400);
    let response = send(&control, "PUT", "/drives/data/snapshots/a", "null");
    assert_eq!(response.status, 400);
    let text = |body: &'static str| ApiRequest {
        method: "PUT",
        path: "/drives/data/snapshots/a",
        query: None,
        content_type: Some(b"text/plain"),
        body: body.as_bytes(),
    };
    assert_eq!(dispatch(&control, &text("{}")).status, 415);
    assert_eq!(
        dispatch(&control, &text("")).status,
        201,
        "an empty body needs no Content-Type"
    );
    let response = send(&control, "GET", "/drives/data/snapshots", "[]");
    assert_eq!(response.status, 400, "GET takes no body");
    assert_eq!(
        calls_after(&control, 3),
        vec![Call::SnapshotDrive("data".into(), "a".into())]
    );
}

#[test]
fn bad_snapshot_names_are_400_before_the_controller() {
    let control = running();
    let long = "a".repeat(MAX_SNAPSHOT_NAME_LEN + 1);
    for name in [
        ".hidden",
        "..",
        ".",
        "a%2Fb",
        "a%20b",
        "%C3%A9t%C3%A9",
        "a:b",
        "a*",
        &long,
        "bad%zz",
    ] {
        let response = send(
            &control,
            "PUT",
            &format!("/drives/data/snapshots/{name}"),
            "",
        );
        assert_eq!(response.status, 400, "{name}");
        assert!(
            fault(&response).contains("snapshot_name"),
            "{name}: {}",
            fault(&response)
        );
    }
    assert_eq!(control.calls().len(), 3, "nothing reached the controller");

    let longest = "Z".repeat(MAX_SNAPSHOT_NAME_LEN);
    for name in ["-", "_x", "a..b", "0", longest.as_str()] {
        let response = send(
            &control,
            "PUT",
            &format!("/drives/data/snapshots/{name}"),
            "",
        );
        assert_eq!(response.status, 201, "{name}");
    }
}

#[test]
fn snapshot_names() {
    assert!(is_valid_snapshot_name("a"));
    assert!(is_valid_snapshot_name("v1.0-rc_2"));
    assert!(is_valid_snapshot_name("-x."));
    assert!(is_valid_snapshot_name(&"x".repeat(64)));
    assert!(!is_valid_snapshot_name(""));
    assert!(!is_valid_snapshot_name(".a"));
    assert!(!is_valid_snapshot_name(&"x".repeat(65)));
    assert!(!is_valid_snapshot_name("a/b"));
    assert!(!is_valid_snapshot_name("é"));
    assert!(SNAPSHOT_NAME_PATTERN.ends_with(&format!("{{0,{}}}$", MAX_SNAPSHOT_NAME_LEN - 1)));
}

#[test]
fn snapshot_errors_from_the_controller() {
    let control = with_drives();
    let response = send(&control, "PUT", "/drives/data/snapshots/s", "");
    assert_eq!(response.status, 409, "before start");
    let response = send(&control, "GET", "/drives/data/snapshots", "");
    assert_eq!(response.status, 409, "before start");

    let start = r#"{"action_type": "InstanceStart"}"#;
    assert_eq!(send(&control, "PUT", "/actions", start).status, 204);
    let response = send(&control, "PUT", "/drives/root/snapshots/s", "");
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("raw image"),
        "{}",
        fault(&response)
    );
    let response = send(&control, "GET", "/drives/root/snapshots", "");
    assert_eq!(response.status, 400);
    let response = send(&control, "PUT", "/drives/nope/snapshots/s", "");
    assert_eq!(response.status, 404);
    let response = send(&control, "GET", "/drives/nope/snapshots", "");
    assert_eq!(response.status, 404);

    assert_eq!(
        send(&control, "PUT", "/drives/data/snapshots/s", "").status,
        201
    );
    let response = send(&control, "PUT", "/drives/data/snapshots/s", "");
    assert_eq!(response.status, 400, "the name is taken");
    assert!(fault(&response).contains("already"), "{}", fault(&response));
}

#[test]
fn injected_errors_pass_through_every_drive_route() {
    let routes: [(&str, &str, &str); 4] = [
        ("GET", "/drives/root", ""),
        (
            "PATCH",
            "/drives/root",
            r#"{"drive_id": "root", "limits": {}}"#,
        ),
        ("PUT", "/drives/data/snapshots/s", ""),
        ("GET", "/drives/data/snapshots", ""),
    ];
    let errors = [
        ApiError::not_found("there is no drive `root`"),
        ApiError::conflict("the VM has stopped"),
        ApiError::bad_request("the volume is full"),
        ApiError {
            status: 503,
            message: "busy".into(),
        },
    ];
    for (method, path, body) in routes {
        for error in &errors {
            let control = running();
            control.fail_next(error.clone());
            let response = send(&control, method, path, body);
            assert_eq!(response.status, error.status, "{method} {path}");
            assert_eq!(fault(&response), error.message, "{method} {path}");
            assert_eq!(control.calls().len(), 4, "{method} {path} was called once");
        }
    }
}

#[test]
fn dispatch_lets_a_controller_panic_through() {
    // The server catches panics (see the server tests); dispatch just lets them through.
    let control = running();
    control.panic_next();
    let request = ApiRequest {
        method: "GET",
        path: "/drives/root",
        query: None,
        content_type: JSON,
        body: b"",
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dispatch(&control, &request)
    }));
    assert!(outcome.is_err());
    let _: Value = body_json(&send(&control, "GET", "/drives/root", ""));
}

#[test]
fn arrays_are_not_accepted_as_objects() {
    let control = with_drives();
    let response = send(
        &control,
        "PATCH",
        "/drives/root",
        r#"{"drive_id": "root", "limits": {"iops": [5]}}"#,
    );
    assert_eq!(response.status, 400);
    assert_eq!(
        fault(&response),
        "invalid DrivePatch body: field `limits.iops`: expected a JSON object, found an array"
    );
    let response = send(&control, "PUT", "/machine-config", "[2, 256]");
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("expected a JSON object"),
        "{}",
        fault(&response)
    );
    let running = running();
    let response = send(&running, "PUT", "/drives/data/snapshots/s", "[]");
    assert_eq!(response.status, 400);
    assert_eq!(control.calls().len(), 2, "nothing reached the controller");
}
