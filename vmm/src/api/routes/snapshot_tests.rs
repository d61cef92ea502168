//! Dispatch tests of the snapshot store routes (query strings) and of `PUT /snapshot/load`.

use std::path::PathBuf;

use serde_json::json;

use super::mock::{Call, MockControl};
use super::tests::{body_json, fault, send};
use crate::api::{SnapshotInfo, SnapshotList, SnapshotLoad};

#[test]
fn list_decodes_the_store_from_the_query_string() {
    let control = MockControl::default();
    let response = send(&control, "GET", "/snapshots?snapshot_dir=%2Fsnapshots", "");
    assert_eq!(response.status, 200, "{}", fault_or_body(&response));
    let list: SnapshotList = serde_json::from_value(body_json(&response)).unwrap();
    let ids: Vec<&str> = list.snapshots.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["base", "d1"]);
    assert_eq!(list.ignored[0].name, "half.tmp");
    assert_eq!(body_json(&response)["snapshots"][1]["kind"], json!("diff"));

    // `+` is a space, escapes are decoded; a missing store is the controller's 404.
    let response = send(&control, "GET", "/snapshots?snapshot_dir=/my+snaps%2B", "");
    assert_eq!(response.status, 404);
    assert!(
        fault(&response).contains("/my snaps+"),
        "{}",
        fault(&response)
    );
    assert_eq!(
        control.calls(),
        vec![
            Call::ListSnapshots(PathBuf::from("/snapshots")),
            Call::ListSnapshots(PathBuf::from("/my snaps+")),
        ]
    );
}

fn fault_or_body(response: &super::ApiResponse) -> String {
    response
        .body
        .as_deref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

#[test]
fn bad_query_strings_are_400_naming_the_parameter() {
    let control = MockControl::default();
    for (target, needle) in [
        ("/snapshots", "missing query parameter `snapshot_dir`"),
        ("/snapshots?", "missing query parameter `snapshot_dir`"),
        ("/snapshots?snapshot_dir=", "`snapshot_dir` is empty"),
        (
            "/snapshots?snapshot_dir=/s&verbose=1",
            "unknown query parameter `verbose`",
        ),
        (
            "/snapshots?snapshot_dir=/a&snapshot_dir=/b",
            "`snapshot_dir` is given twice",
        ),
        ("/snapshots?snapshot_dir=%zz", "malformed percent-escape"),
        (
            "/snapshots/d1?dir=/snapshots",
            "unknown query parameter `dir`",
        ),
        ("/snapshots/d1", "missing query parameter `snapshot_dir`"),
    ] {
        let response = send(&control, "GET", target, "");
        assert_eq!(response.status, 400, "{target}");
        assert!(
            fault(&response).contains(needle),
            "{target}: {}",
            fault(&response)
        );
    }
    let response = send(&control, "DELETE", "/snapshots/d1", "");
    assert_eq!(response.status, 400);
    assert!(fault(&response).contains("snapshot_dir"));
    assert!(control.calls().is_empty(), "nothing reached the controller");

    // Routes that take no query parameters ignore a query string.
    assert_eq!(send(&control, "GET", "/?verbose=1&x", "").status, 200);
}

#[test]
fn show_and_delete_a_snapshot() {
    let control = MockControl::default();
    let response = send(&control, "GET", "/snapshots/d1?snapshot_dir=/snapshots", "");
    assert_eq!(response.status, 200);
    let info: SnapshotInfo = serde_json::from_value(body_json(&response)).unwrap();
    assert_eq!(info.chain, ["base", "d1"]);
    assert_eq!(info.manifest.parent.as_deref(), Some("base"));
    let response = send(
        &control,
        "GET",
        "/snapshots/base?snapshot_dir=/snapshots",
        "",
    );
    assert_eq!(body_json(&response)["dependents"], json!(["d1"]));
    let response = send(
        &control,
        "GET",
        "/snapshots/nope?snapshot_dir=/snapshots",
        "",
    );
    assert_eq!(response.status, 404);

    let response = send(
        &control,
        "DELETE",
        "/snapshots/base?snapshot_dir=/snapshots",
        "",
    );
    assert_eq!(response.status, 409);
    assert!(fault(&response).contains("d1"), "{}", fault(&response));
    let response = send(
        &control,
        "DELETE",
        "/snapshots/d1?snapshot_dir=/snapshots",
        "",
    );
    assert_eq!(response.status, 204);
    assert!(response.body.is_none());
    let response = send(
        &control,
        "DELETE",
        "/snapshots/base?snapshot_dir=/snapshots",
        "",
    );
    assert_eq!(response.status, 204);
    let response = send(
        &control,
        "DELETE",
        "/snapshots/base?snapshot_dir=/snapshots",
        "",
    );
    assert_eq!(response.status, 404);
    let response = send(&control, "GET", "/snapshots?snapshot_dir=/snapshots", "");
    assert_eq!(body_json(&response)["snapshots"], json!([]));

    // Encoded ids are decoded; bodies are refused; other methods are 405.
    let response = send(
        &control,
        "GET",
        "/snapshots/a%2Eb?snapshot_dir=/snapshots",
        "",
    );
    assert_eq!(response.status, 404);
    assert!(matches!(
        control.calls().last(),
        Some(Call::SnapshotInfo(_, id)) if id == "a.b"
    ));
    let response = send(
        &control,
        "DELETE",
        "/snapshots/d1?snapshot_dir=/snapshots",
        "{}",
    );
    assert_eq!(response.status, 400);
    let response = send(
        &control,
        "PUT",
        "/snapshots/d1?snapshot_dir=/snapshots",
        "{}",
    );
    assert_eq!(response.status, 405);
    assert_eq!(response.allow.as_deref(), Some("DELETE, GET"));
    let response = send(&control, "DELETE", "/snapshots?snapshot_dir=/snapshots", "");
    assert_eq!(response.status, 405);
    assert_eq!(response.allow.as_deref(), Some("GET"));
}

#[test]
fn load_a_snapshot() {
    let control = MockControl::default();
    let body = r#"{"snapshot_path": "/snapshots/base",
                   "network_overrides": [{"iface_id": "net0", "detach": true},
                                         {"iface_id": "net1", "socket_path": "/a",
                                          "peer_socket_path": "/b", "guest_mac": "02:00:00:00:00:09"}]}"#;
    assert_eq!(send(&control, "PUT", "/snapshot/load", body).status, 204);
    let Some(Call::LoadSnapshot(load)) = control.calls().pop() else {
        panic!("no load call");
    };
    assert_eq!(
        load,
        SnapshotLoad {
            snapshot_path: PathBuf::from("/snapshots/base"),
            vm_id: None,
            serial_output: None,
            serial_input: None,
            network_overrides: load.network_overrides.clone(),
            resume: true,
        }
    );
    assert!(load.network_overrides[0].detach);
    assert_eq!(
        load.network_overrides[1].guest_mac.as_deref(),
        Some("02:00:00:00:00:09")
    );
    assert_eq!(
        body_json(&send(&control, "GET", "/", ""))["state"],
        json!("Running")
    );
    let response = send(&control, "PUT", "/snapshot/load", body);
    assert_eq!(response.status, 409);

    let control = MockControl::default();
    let body = r#"{"snapshot_path": "/snapshots/base", "resume": false}"#;
    assert_eq!(send(&control, "PUT", "/snapshot/load", body).status, 204);
    assert_eq!(
        body_json(&send(&control, "GET", "/", ""))["state"],
        json!("Paused")
    );

    let control = MockControl::default();
    for (body, needle) in [
        (r#"{}"#, "snapshot_path"),
        (r#"{"snapshot_path": "/s", "resum": false}"#, "resum"),
        (
            r#"{"snapshot_path": "/s", "network_overrides": [{"detach": true}]}"#,
            "iface_id",
        ),
        (
            r#"{"snapshot_path": "/s", "network_overrides": [{"iface_id": "a", "bridge": "b"}]}"#,
            "bridge",
        ),
    ] {
        let response = send(&control, "PUT", "/snapshot/load", body);
        assert_eq!(response.status, 400, "{body}");
        assert!(
            fault(&response).contains(needle),
            "{body}: {}",
            fault(&response)
        );
    }
    assert!(control.calls().is_empty());
}
