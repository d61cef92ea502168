//! Samples of the replay API's bodies and answers. The answers are only serialized, so
//! stand-ins (`shapes`) that deserialize exactly what they serialize to let the schema
//! checks probe them.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::{accepts, to_value, SchemaCheck};

/// An input as the replay reports it.
fn delivered(index: u64) -> replay::player::status::Delivered {
    replay::player::status::Delivered {
        index,
        seq: 100 + index,
        recorded_vm_time_ns: 2_000_000_000 + index * 1_000_000,
        clone_vm_time_ns: 2_000_400_000 + index * 1_000_000,
        source: "net0".into(),
        what: "udp 10.0.0.7:5000 > 10.0.0.2:53, 64 bytes".into(),
    }
}

fn divergence() -> replay::player::Divergence {
    replay::player::Divergence {
        kind: "mismatch",
        output_index: Some(7),
        seq: Some(112),
        recorded_vm_time_ns: Some(2_011_000_000),
        clone_vm_time_ns: 2_011_500_000,
        source: "net0".into(),
        expected: Some("udp 10.0.0.2:53 > 10.0.0.7:5000, 80 bytes".into()),
        actual: Some("udp 10.0.0.2:53 > 10.0.0.7:5000, 96 bytes".into()),
        detail: "at byte 42:\n  expected 00 01\n  actual   00 02".into(),
    }
}

fn guest_stop() -> replay::player::status::GuestStop {
    replay::player::status::GuestStop {
        reason: "guest reset".into(),
        after: Some(delivered(11)),
    }
}

/// A status with every optional field set.
fn replay_status() -> replay::player::ReplayStatus {
    replay::player::ReplayStatus {
        state: replay::player::ReplayState::Paused,
        paused_by: Some("divergence".into()),
        snapshot: "s3".into(),
        buffer: "all".into(),
        selection: "all".into(),
        speed: "max".into(),
        position: 12,
        total: 40,
        next: Some(delivered(12)),
        delivered: 12,
        filtered: 3,
        injected: 1,
        check: replay::player::CheckSummary {
            expected: 30,
            checked: 8,
            matched: 7,
            divergences: 1,
        },
        first_divergence: Some(divergence()),
        block_mismatches: vec![
            "root: request 4 read 4096 bytes at sector 2048: data differs".into(),
        ],
        drift: replay::player::status::Drift {
            last_ns: 250_000,
            max_late_ns: 1_200_000,
            max_early_ns: -3_000_000,
            forced: 2,
        },
        guest_stopped: Some(guest_stop()),
        last_delivered: vec![delivered(10), delivered(11)],
    }
}

/// A status with every optional field unset.
fn bare_replay_status() -> replay::player::ReplayStatus {
    replay::player::ReplayStatus {
        state: replay::player::ReplayState::Running,
        paused_by: None,
        next: None,
        first_divergence: None,
        block_mismatches: vec![],
        guest_stopped: None,
        last_delivered: vec![],
        ..replay_status()
    }
}

/// The replay's response types are only serialized. These stand-ins deserialize exactly
/// what those types serialize to (a field skipped when empty may be absent but not null; an
/// `Option` always written may be null but not absent), so that the schema checks can
/// probe them; `replay_shapes_match_the_replay_types` keeps them in step.
mod shapes {
    use serde::{Deserialize, Deserializer, Serialize};

    /// A field written only when set: absent, or a value (not null).
    fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(deserializer).map(Some)
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum ReplayState {
        Running,
        Paused,
        Finished,
        GuestStopped,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Delivered {
        index: u64,
        seq: u64,
        recorded_vm_time_ns: u64,
        clone_vm_time_ns: u64,
        source: String,
        what: String,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct InjectedEvent {
        stream: String,
        position: u64,
        what: String,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Drift {
        last_ns: i64,
        max_late_ns: i64,
        max_early_ns: i64,
        forced: u64,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct GuestStop {
        reason: String,
        #[serde(deserialize_with = "Option::deserialize")]
        after: Option<Delivered>,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct CheckSummary {
        expected: u64,
        checked: u64,
        matched: u64,
        divergences: u64,
    }

    /// The values `Divergence::kind` takes.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum DivergenceKind {
        Mismatch,
        Missing,
        Unexpected,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Divergence {
        kind: DivergenceKind,
        #[serde(deserialize_with = "Option::deserialize")]
        output_index: Option<u64>,
        #[serde(deserialize_with = "Option::deserialize")]
        seq: Option<u64>,
        #[serde(deserialize_with = "Option::deserialize")]
        recorded_vm_time_ns: Option<u64>,
        clone_vm_time_ns: u64,
        source: String,
        #[serde(deserialize_with = "Option::deserialize")]
        expected: Option<String>,
        #[serde(deserialize_with = "Option::deserialize")]
        actual: Option<String>,
        detail: String,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct ReplayStatus {
        state: ReplayState,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        paused_by: Option<String>,
        snapshot: String,
        buffer: String,
        selection: String,
        speed: String,
        position: u64,
        total: u64,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        next: Option<Delivered>,
        delivered: u64,
        filtered: u64,
        injected: u64,
        check: CheckSummary,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        first_divergence: Option<Divergence>,
        block_mismatches: Vec<String>,
        drift: Drift,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        guest_stopped: Option<GuestStop>,
        last_delivered: Vec<Delivered>,
    }
}

/// Whether `value` deserializes as `T` and serializes back to itself.
fn round_trips<T: DeserializeOwned + Serialize>(value: &Value) -> bool {
    serde_json::from_value::<T>(value.clone()).is_ok_and(|t| to_value(&t) == *value)
}

#[test]
fn replay_shapes_match_the_replay_types() {
    use replay::player::status::{GuestStop, InjectedEvent};
    use replay::player::{Divergence, ReplayState};

    for state in [
        ReplayState::Running,
        ReplayState::Paused,
        ReplayState::Finished,
        ReplayState::GuestStopped,
    ] {
        let status = replay::player::ReplayStatus {
            state,
            ..replay_status()
        };
        assert!(round_trips::<shapes::ReplayStatus>(&to_value(&status)));
    }
    assert!(round_trips::<shapes::ReplayStatus>(&to_value(
        &bare_replay_status()
    )));
    for kind in ["mismatch", "missing", "unexpected"] {
        let full = Divergence {
            kind,
            ..divergence()
        };
        let bare = Divergence {
            kind,
            output_index: None,
            seq: None,
            recorded_vm_time_ns: None,
            expected: None,
            actual: None,
            ..divergence()
        };
        assert!(round_trips::<shapes::Divergence>(&to_value(&full)));
        assert!(round_trips::<shapes::Divergence>(&to_value(&bare)));
    }
    let no_input = GuestStop {
        after: None,
        ..guest_stop()
    };
    assert!(round_trips::<shapes::GuestStop>(&to_value(&guest_stop())));
    assert!(round_trips::<shapes::GuestStop>(&to_value(&no_input)));
    assert!(round_trips::<shapes::InjectedEvent>(&to_value(
        &InjectedEvent {
            stream: "net".into(),
            position: 3,
            what: "dropped".into(),
        }
    )));
}

/// The replay API's bodies and answers.
pub(super) fn replay_checks(net_override: &crate::api::NetOverride) -> Vec<SchemaCheck> {
    use crate::api::{
        ReplayPatch, ReplayRestart, ReplayRunState, ReplayRunUntil, ReplayStart, ReplayStep,
    };
    use replay::player::ReplayState;

    let states = [
        ReplayState::Running,
        ReplayState::Paused,
        ReplayState::Finished,
        ReplayState::GuestStopped,
    ];
    let status = replay_status();
    vec![
        SchemaCheck {
            name: "ReplayStart",
            sample: to_value(&ReplayStart {
                capture_dir: PathBuf::from("/var/lib/reprise/capture"),
                buffer: Some("all".into()),
                snapshot_dir: PathBuf::from("/var/lib/reprise/snapshots"),
                // Both ways of choosing the snapshot; validation refuses that, serde not.
                snapshot_id: Some("s3".into()),
                before: Some("12s".into()),
                selection: Some("time:1s-5s".into()),
                filters: vec!["exclude src-ip=10.0.0.3".into()],
                speed: Some("2x".into()),
                entropy: Some("seed=7,drop=0.05".into()),
                strict: true,
                until_divergence: true,
                paused: true,
                wait_for_debugger: true,
                check: Some(vec!["net".into(), "serial".into()]),
                vm_id: Some("clone1".into()),
                serial_output: Some("file:/tmp/clone1.log".into()),
                live_nets: vec![net_override.clone()],
            }),
            accepts: accepts::<ReplayStart>,
            enums: vec![],
        },
        SchemaCheck {
            name: "ReplayRestart",
            sample: to_value(&ReplayRestart {
                snapshot_id: Some("s2".into()),
                before: Some("8s".into()),
                buffer: Some("client7".into()),
                selection: Some("seq:100-200".into()),
                filters: Some(vec!["exclude class=serial".into()]),
                speed: Some("step".into()),
                entropy: Some(String::new()),
                paused: Some(true),
            }),
            accepts: accepts::<ReplayRestart>,
            enums: vec![],
        },
        SchemaCheck {
            name: "ReplayPatch",
            sample: to_value(&ReplayPatch {
                state: Some(ReplayRunState::Paused),
                speed: Some("0.5".into()),
            }),
            accepts: accepts::<ReplayPatch>,
            enums: vec![(
                "state",
                vec![
                    to_value(&ReplayRunState::Paused),
                    to_value(&ReplayRunState::Running),
                ],
            )],
        },
        SchemaCheck {
            name: "ReplayStep",
            sample: to_value(&ReplayStep { events: 5 }),
            accepts: accepts::<ReplayStep>,
            enums: vec![],
        },
        SchemaCheck {
            name: "ReplayRunUntil",
            // Every target; validation wants exactly one, serde not.
            sample: to_value(&ReplayRunUntil {
                event: Some(20),
                time: Some("3s".into()),
                divergence: true,
            }),
            accepts: accepts::<ReplayRunUntil>,
            enums: vec![],
        },
        SchemaCheck {
            name: "ReplayStatus",
            sample: to_value(&status),
            accepts: accepts::<shapes::ReplayStatus>,
            enums: vec![("state", states.iter().map(to_value).collect())],
        },
        SchemaCheck {
            name: "Delivered",
            sample: to_value(&delivered(12)),
            accepts: accepts::<shapes::Delivered>,
            enums: vec![],
        },
        SchemaCheck {
            name: "InjectedEvent",
            sample: to_value(&replay::player::status::InjectedEvent {
                stream: "blk:root".into(),
                position: 4,
                what: "blk#4 io-error sector 2048".into(),
            }),
            accepts: accepts::<shapes::InjectedEvent>,
            enums: vec![],
        },
        SchemaCheck {
            name: "Drift",
            sample: to_value(&status.drift),
            accepts: accepts::<shapes::Drift>,
            enums: vec![],
        },
        SchemaCheck {
            name: "GuestStop",
            sample: to_value(&guest_stop()),
            accepts: accepts::<shapes::GuestStop>,
            enums: vec![],
        },
        SchemaCheck {
            name: "CheckSummary",
            sample: to_value(&status.check),
            accepts: accepts::<shapes::CheckSummary>,
            enums: vec![],
        },
        SchemaCheck {
            name: "Divergence",
            sample: to_value(&divergence()),
            accepts: accepts::<shapes::Divergence>,
            enums: vec![(
                "kind",
                vec![json!("mismatch"), json!("missing"), json!("unexpected")],
            )],
        },
    ]
}
