//! Dispatch tests: routing, body decoding and error mapping, without a socket.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::mock::{Call, MockControl};
use super::*;
use crate::api::{InstanceInfo, VmState};
use crate::config::VmConfig;

pub(super) const JSON: Option<&[u8]> = Some(b"application/json");

/// Dispatches a request; `target` is the path with an optional `?query`.
pub(super) fn send(control: &MockControl, method: &str, target: &str, body: &str) -> ApiResponse {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let request = ApiRequest {
        method,
        path,
        query,
        content_type: JSON,
        body: body.as_bytes(),
    };
    dispatch(control, &request)
}

pub(super) fn body_json(response: &ApiResponse) -> Value {
    let body = response.body.as_deref().expect("response has a body");
    serde_json::from_slice(body).expect("response body is JSON")
}

pub(super) fn fault(response: &ApiResponse) -> String {
    let body: ErrorBody = serde_json::from_value(body_json(response)).expect("error body");
    body.fault_message
}

#[test]
fn get_instance_info() {
    let control = MockControl::default();
    let response = send(&control, "GET", "/", "");
    assert_eq!(response.status, 200);
    let info: InstanceInfo = serde_json::from_value(body_json(&response)).unwrap();
    assert_eq!(info.state, VmState::NotStarted);
    assert_eq!(info.app_name, "reprise");
}

#[test]
fn put_then_get_machine_config() {
    let control = MockControl::default();
    let body = r#"{"vcpu_count": 2, "mem_size_mib": 256}"#;
    assert_eq!(
        send(&control, "PUT", "/machine-config", body),
        ApiResponse::no_content()
    );
    let expected = MachineConfig {
        vcpu_count: 2,
        mem_size_mib: 256,
        huge_pages: false,
    };
    assert_eq!(control.calls(), vec![Call::MachineConfig(expected.clone())]);

    let response = send(&control, "GET", "/machine-config", "");
    assert_eq!(response.status, 200);
    assert_eq!(
        serde_json::from_value::<MachineConfig>(body_json(&response)).unwrap(),
        expected
    );

    let response = send(&control, "GET", "/vm/config", "");
    assert_eq!(response.status, 200);
    let config: VmConfig = serde_json::from_value(body_json(&response)).unwrap();
    assert_eq!(config.machine, expected);
}

#[test]
fn put_boot_source() {
    let control = MockControl::default();
    let body = r#"{"kernel_image_path": "/k", "boot_args": "console=ttyS0"}"#;
    assert_eq!(send(&control, "PUT", "/boot-source", body).status, 204);
    assert_eq!(
        control.calls(),
        vec![Call::BootSource(BootSource {
            kernel_image_path: PathBuf::from("/k"),
            boot_args: Some("console=ttyS0".into()),
            initrd_path: None,
        })]
    );
}

#[test]
fn put_drive_and_net_with_matching_ids() {
    let control = MockControl::default();
    let drive = r#"{"drive_id": "root", "path_on_host": "/img", "is_read_only": true}"#;
    assert_eq!(send(&control, "PUT", "/drives/root", drive).status, 204);
    let net = r#"{"iface_id": "eth 0", "host_dev_name": "tap0"}"#;
    assert_eq!(
        send(&control, "PUT", "/network-interfaces/eth%200", net).status,
        204
    );
    let calls = control.calls();
    assert!(
        matches!(&calls[0], Call::Drive(d) if d.drive_id == "root" && d.is_read_only && !d.io_direct)
    );
    assert!(matches!(&calls[1], Call::Net(n) if n.iface_id == "eth 0"));
}

#[test]
fn path_and_body_ids_must_agree() {
    let control = MockControl::default();
    let drive = r#"{"drive_id": "other", "path_on_host": "/img"}"#;
    let response = send(&control, "PUT", "/drives/root", drive);
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("`root`") && fault(&response).contains("`other`"));
    let net = r#"{"iface_id": "eth1"}"#;
    assert_eq!(
        send(&control, "PUT", "/network-interfaces/eth0", net).status,
        400
    );
    let response = send(&control, "PUT", "/drives/bad%zz", drive);
    assert_eq!(response.status, 400);
    assert!(
        fault(&response).contains("drive_id"),
        "{}",
        fault(&response)
    );
    assert!(control.calls().is_empty());
}

#[test]
fn put_serial() {
    let control = MockControl::default();
    let body = r#"{"output": "file:/tmp/console.log"}"#;
    assert_eq!(send(&control, "PUT", "/serial", body).status, 204);
    let response = send(&control, "GET", "/vm/config", "");
    assert_eq!(
        body_json(&response)["serial"]["output"],
        json!("file:/tmp/console.log")
    );
    let response = send(&control, "PUT", "/serial", r#"{"output": 1}"#);
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("output"));
}

#[test]
fn actions_and_vm_state() {
    let control = MockControl::default();
    assert_eq!(
        send(
            &control,
            "PUT",
            "/actions",
            r#"{"action_type": "InstanceStart"}"#
        )
        .status,
        204
    );
    assert_eq!(
        send(&control, "PATCH", "/vm", r#"{"state": "Paused"}"#).status,
        204
    );
    assert_eq!(
        send(&control, "PATCH", "/vm", r#"{"state": "Resumed"}"#).status,
        204
    );
    assert_eq!(
        send(
            &control,
            "PUT",
            "/actions",
            r#"{"action_type": "InstanceStop"}"#
        )
        .status,
        204
    );
    assert_eq!(
        control.calls(),
        vec![Call::Start, Call::Pause, Call::Resume, Call::Stop]
    );
    let info = body_json(&send(&control, "GET", "/", ""));
    assert_eq!(info["state"], json!("Stopped"));
}

#[test]
fn malformed_json_is_400_with_position() {
    let control = MockControl::default();
    let response = send(&control, "PUT", "/machine-config", r#"{"vcpu_count": 2,"#);
    assert_eq!(response.status, 400);
    let message = fault(&response);
    assert!(
        message.contains("MachineConfig") && message.contains("line 1 column"),
        "{message}"
    );

    let response = send(
        &control,
        "PUT",
        "/machine-config",
        r#"{"vcpu_count": 2, "mem_size_mib": 64} x"#,
    );
    assert_eq!(response.status, 400, "trailing data is rejected");
    assert!(control.calls().is_empty());
}

#[test]
fn unknown_field_is_400_naming_it() {
    let control = MockControl::default();
    let response = send(
        &control,
        "PUT",
        "/machine-config",
        r#"{"vcpu_count": 2, "mem_size_mib": 64, "smt": true}"#,
    );
    assert_eq!(response.status, 400);
    let message = fault(&response);
    assert!(
        message.contains("unknown field `smt`") && message.contains("column"),
        "{message}"
    );
}

#[test]
fn wrong_type_is_400_naming_the_field() {
    let control = MockControl::default();
    let response = send(
        &control,
        "PUT",
        "/machine-config",
        r#"{"vcpu_count": "2", "mem_size_mib": 64}"#,
    );
    assert_eq!(response.status, 400);
    let message = fault(&response);
    assert!(
        message.contains("vcpu_count") && message.contains("line 1 column"),
        "{message}"
    );

    let response = send(
        &control,
        "PUT",
        "/machine-config",
        r#"{"vcpu_count": 300, "mem_size_mib": 64}"#,
    );
    assert_eq!(
        response.status, 400,
        "a number that does not fit the field's type"
    );
    assert!(fault(&response).contains("vcpu_count"));

    let response = send(&control, "PUT", "/actions", r#"{"action_type": "Reboot"}"#);
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("action_type") && fault(&response).contains("InstanceStart"));

    let response = send(&control, "PUT", "/boot-source", r#"{}"#);
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("missing field `kernel_image_path`"));
}

#[test]
fn controller_errors_pass_through() {
    let control = MockControl::default();
    let response = send(
        &control,
        "PUT",
        "/machine-config",
        r#"{"vcpu_count": 64, "mem_size_mib": 64}"#,
    );
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("out of range"));

    let response = send(&control, "PATCH", "/vm", r#"{"state": "Paused"}"#);
    assert_eq!(response.status, 409, "pausing a VM that has not started");

    control.fail_next(ApiError {
        status: 503,
        message: "busy taking a snapshot".into(),
    });
    let response = send(
        &control,
        "PUT",
        "/actions",
        r#"{"action_type": "InstanceStart"}"#,
    );
    assert_eq!(response.status, 503);
    assert_eq!(fault(&response), "busy taking a snapshot");

    control.fail_next(ApiError {
        status: 200,
        message: "not an error status".into(),
    });
    let response = send(
        &control,
        "PUT",
        "/actions",
        r#"{"action_type": "InstanceStart"}"#,
    );
    assert_eq!(
        response.status, 500,
        "a non-error status from the controller becomes 500"
    );
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405() {
    let control = MockControl::default();
    for path in [
        "/nope",
        "/vm/config/",
        "/drives",
        "/drives/",
        "/drives/a/b",
        "/drives/a/snapshots/",
        "/drives//snapshots",
        "/drives/a/snapshots/b/c",
        "",
        "*",
    ] {
        let response = send(&control, "GET", path, "");
        assert_eq!(response.status, 404, "{path}");
        assert!(fault(&response).contains("no API resource"));
    }
    let response = send(&control, "DELETE", "/machine-config", "");
    assert_eq!(response.status, 405);
    assert_eq!(response.allow.as_deref(), Some("GET, PUT"));
    assert!(fault(&response).contains("DELETE"));
    let response = send(&control, "GET", "/actions", "");
    assert_eq!(response.allow.as_deref(), Some("PUT"));
    let response = send(&control, "POST", "/drives/x", "{}");
    assert_eq!(response.allow.as_deref(), Some("GET, PATCH, PUT"));
    let response = send(&control, "PUT", "/drives/x/snapshots", "");
    assert_eq!(response.allow.as_deref(), Some("GET"));
    let response = send(&control, "GET", "/drives/x/snapshots/s", "");
    assert_eq!(response.allow.as_deref(), Some("PUT"));
}

#[test]
fn content_type_and_empty_bodies() {
    let control = MockControl::default();
    let body = br#"{"action_type": "InstanceStart"}"#;
    let request = ApiRequest {
        method: "PUT",
        path: "/actions",
        query: None,
        content_type: Some(b"text/plain"),
        body,
    };
    let response = dispatch(&control, &request);
    assert_eq!(response.status, 415);
    assert!(fault(&response).contains("text/plain"));

    let request = ApiRequest {
        content_type: None,
        ..request
    };
    assert_eq!(
        dispatch(&control, &request).status,
        204,
        "no Content-Type is accepted"
    );

    let response = send(&control, "PUT", "/boot-source", "  \n");
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("missing request body"));

    let response = send(&control, "PUT", "/boot-source", "\u{1}\u{ff}garbage");
    assert_eq!(response.status, 400);

    let response = send(&control, "GET", "/", "{}");
    assert_eq!(response.status, 400, "GET takes no body");
    assert_eq!(control.calls(), vec![Call::Start]);
}

#[test]
fn route_table_is_consistent() {
    for (i, a) in ROUTES.iter().enumerate() {
        assert!(a.path.starts_with('/'), "{}", a.path);
        assert!(
            matches!(a.method, "GET" | "PUT" | "PATCH" | "DELETE"),
            "{}",
            a.method
        );
        assert!(matches!(a.success_status, 200 | 201 | 204));
        let names: Vec<&str> = a.path.split('/').filter_map(path::param_name).collect();
        for (j, name) in names.iter().enumerate() {
            assert!(
                !names[j + 1..].contains(name),
                "{} repeats {{{name}}}",
                a.path
            );
        }
        for b in &ROUTES[i + 1..] {
            assert!(
                !(a.method == b.method && a.path == b.path),
                "duplicate {} {}",
                a.method,
                a.path
            );
            assert_ne!(a.operation, b.operation);
        }
    }
}
