//! Keeps `docs/openapi.yaml` true: the documented operations are exactly [`ROUTES`], and each
//! documented schema has the fields, required fields, nullability, types and enums of the
//! serde struct it describes (found by serializing samples and by trying to deserialize
//! variations of them).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use blockstore::limits::{Bucket, Limits};

use super::*;
use crate::config::{MAX_MEM_MIB, MAX_VCPUS, MIN_MEM_MIB};

mod samples;

use samples::checks;

const DOCUMENT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"));

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_yaml::from_str(DOCUMENT).expect("docs/openapi.yaml parses as YAML with string keys")
}

fn object<'a>(value: &'a Value, what: &str) -> &'a Map<String, Value> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not a mapping in docs/openapi.yaml"))
}

fn schema_ref(name: &str) -> Value {
    json!(format!("#/components/schemas/{name}"))
}

/// The request body an operation takes.
enum RequestBody {
    /// None: the document has no `requestBody`.
    None,
    /// Required, of this schema.
    Required(&'static str),
    /// Optional (may be empty), of this schema.
    Optional(&'static str),
}

/// The body of an operation's successful response.
enum ResponseBody {
    /// None (204).
    None,
    /// One object of this schema.
    Object(&'static str),
    /// An array of objects of this schema.
    Array(&'static str),
}

/// The request and successful response bodies of each operation.
fn schemas_of(operation: Operation) -> (RequestBody, ResponseBody) {
    use RequestBody as Rq;
    use ResponseBody as Rs;
    match operation {
        Operation::GetInstanceInfo => (Rq::None, Rs::Object("InstanceInfo")),
        Operation::GetVmConfig => (Rq::None, Rs::Object("VmConfig")),
        Operation::GetMachineConfig => (Rq::None, Rs::Object("MachineConfig")),
        Operation::PutMachineConfig => (Rq::Required("MachineConfig"), Rs::None),
        Operation::PutBootSource => (Rq::Required("BootSource"), Rs::None),
        Operation::PutDrive => (Rq::Required("DriveConfig"), Rs::None),
        Operation::GetDrive => (Rq::None, Rs::Object("DriveStatus")),
        Operation::PatchDrive => (Rq::Required("DrivePatch"), Rs::None),
        Operation::PutDriveSnapshot => (Rq::Optional("Empty"), Rs::Object("DriveSnapshot")),
        Operation::PutSnapshotCreate => (
            Rq::Required("SnapshotCreate"),
            Rs::Object("SnapshotCreated"),
        ),
        Operation::PutSnapshotSchedule => (Rq::Required("SnapshotSchedule"), Rs::None),
        Operation::ListDriveSnapshots => (Rq::None, Rs::Array("DriveSnapshot")),
        Operation::PutNetworkInterface => (Rq::Required("NetConfig"), Rs::None),
        Operation::PutSerial => (Rq::Required("SerialConfig"), Rs::None),
        Operation::PutAction => (Rq::Required("InstanceAction"), Rs::None),
        Operation::PatchVm => (Rq::Required("VmStatePatch"), Rs::None),
        Operation::GetVcpus => (Rq::None, Rs::Array("VcpuRegisters")),
        Operation::PutDebugger => (Rq::Required("DebuggerStart"), Rs::Object("GdbStatus")),
        Operation::GetDebugger => (Rq::None, Rs::Object("GdbStatus")),
        Operation::PutSnapshotLoad => (Rq::Required("SnapshotLoad"), Rs::None),
        Operation::ListSnapshots => (Rq::None, Rs::Object("SnapshotList")),
        Operation::GetSnapshot => (Rq::None, Rs::Object("SnapshotInfo")),
        Operation::DeleteSnapshot => (Rq::None, Rs::None),
        Operation::PutRecording => (Rq::Required("RecordingStart"), Rs::None),
        Operation::GetRecording => (Rq::None, Rs::Object("RecordingStatus")),
        Operation::DeleteRecording => (Rq::None, Rs::Object("RecordingStatus")),
        Operation::PutReplay => (Rq::Required("ReplayStart"), Rs::None),
        Operation::GetReplay => (Rq::None, Rs::Object("ReplayStatus")),
        Operation::PatchReplay => (Rq::Required("ReplayPatch"), Rs::None),
        Operation::GetReplayDivergences => (Rq::None, Rs::Array("Divergence")),
        Operation::GetReplayInjections => (Rq::None, Rs::Array("InjectedEvent")),
        Operation::PutReplayStep => (Rq::Required("ReplayStep"), Rs::None),
        Operation::PutReplayRunUntil => (Rq::Required("ReplayRunUntil"), Rs::None),
        Operation::PutReplayRestart => (Rq::Required("ReplayRestart"), Rs::None),
    }
}

#[test]
fn documented_operations_are_exactly_the_routes() {
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in object(&doc["paths"], "paths") {
        for key in object(item, path).keys() {
            if HTTP_METHODS.contains(&key.as_str()) {
                documented.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[test]
fn each_operation_matches_its_route() {
    let doc = document();
    for route in ROUTES {
        let name = format!("{} {}", route.method, route.path);
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        assert_eq!(op["summary"], json!(route.summary), "summary of {name}");

        let responses = object(&op["responses"], &name);
        let success = route.success_status.to_string();
        assert!(
            responses.contains_key(&success),
            "{name} documents no {success} response"
        );
        assert_eq!(
            responses["default"]["$ref"],
            json!("#/components/responses/Error"),
            "{name}"
        );

        let (request, response) = schemas_of(route.operation);
        let request_schema = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        match request {
            RequestBody::Required(schema) => {
                assert_eq!(op["requestBody"]["required"], json!(true), "{name}");
                assert_eq!(
                    request_schema,
                    &schema_ref(schema),
                    "request schema of {name}"
                );
            }
            RequestBody::Optional(schema) => {
                assert_eq!(
                    op["requestBody"]["required"],
                    json!(false),
                    "{name}: the body may be omitted"
                );
                assert_eq!(
                    request_schema,
                    &schema_ref(schema),
                    "request schema of {name}"
                );
            }
            RequestBody::None => assert!(op.get("requestBody").is_none(), "{name} takes no body"),
        }
        let content = &responses[&success]["content"];
        let response_schema = &content["application/json"]["schema"];
        match response {
            ResponseBody::Object(schema) => {
                assert!(matches!(route.success_status, 200 | 201), "{name}");
                assert_eq!(
                    response_schema["$ref"],
                    schema_ref(schema),
                    "response schema of {name}"
                );
            }
            ResponseBody::Array(schema) => {
                assert_eq!(route.success_status, 200, "{name}");
                assert_eq!(response_schema["type"], json!("array"), "{name}");
                assert_eq!(
                    response_schema["items"]["$ref"],
                    schema_ref(schema),
                    "response items of {name}"
                );
            }
            ResponseBody::None => {
                assert_eq!(route.success_status, 204, "{name}");
                assert!(content.is_null(), "{name} answers without a body");
            }
        }

        let template_params: BTreeSet<String> = route
            .path
            .split('/')
            .filter_map(path::param_name)
            .map(str::to_string)
            .collect();
        let documented = |place: &str| -> BTreeSet<String> {
            op["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .map(|p| match p["$ref"].as_str() {
                            Some(target) => doc
                                .pointer(target.trim_start_matches('#'))
                                .unwrap_or_else(|| panic!("{name}: {target} does not exist")),
                            None => p,
                        })
                        .inspect(|p| {
                            assert!(
                                matches!(p["in"].as_str(), Some("path" | "query")),
                                "{name}: parameters are in the path or the query"
                            );
                            assert_eq!(p["required"], json!(true), "{name}");
                        })
                        .filter(|p| p["in"] == json!(place))
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            template_params,
            documented("path"),
            "path parameters of {name}"
        );
        let query_params: BTreeSet<String> = route.query.iter().map(|q| q.to_string()).collect();
        assert_eq!(
            query_params,
            documented("query"),
            "query parameters of {name}"
        );
    }
}

/// The JSON type name OpenAPI uses for a (non-null) value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `sample` with field `key` replaced (or removed, for `None`).
fn with_field(sample: &Value, key: &str, value: Option<Value>) -> Value {
    let mut changed = sample.clone();
    let fields = changed.as_object_mut().expect("sample is an object");
    match value {
        Some(value) => fields.insert(key.to_string(), value),
        None => fields.remove(key),
    };
    changed
}

/// The schema a property refers to, with `$ref` or (to be nullable) `allOf: [$ref]`.
fn referenced_schema(property: &Value) -> Option<&str> {
    let reference = match property.get("$ref") {
        Some(reference) => reference,
        None => {
            let all_of = property.get("allOf")?.as_array()?;
            assert_eq!(
                all_of.len(),
                1,
                "allOf is only used to make a $ref nullable"
            );
            &all_of[0]["$ref"]
        }
    };
    let reference = reference.as_str().expect("$ref is a string");
    Some(
        reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{reference} is not a local schema")),
    )
}

#[test]
fn documented_schemas_match_the_serde_structs() {
    let doc = document();
    let schemas = object(&doc["components"]["schemas"], "components.schemas");
    let checks = checks();

    let documented: BTreeSet<&str> = schemas.keys().map(String::as_str).collect();
    let checked: BTreeSet<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(
        documented, checked,
        "every documented schema is checked against a Rust type"
    );

    for check in &checks {
        let name = check.name;
        let schema = &schemas[name];
        assert_eq!(schema["type"], json!("object"), "{name}");
        assert!(
            (check.accepts)(check.sample.clone()),
            "{name}: the sample itself deserializes"
        );
        let sample = object(&check.sample, name);
        let properties = object(&schema["properties"], name);

        let fields: BTreeSet<&String> = sample.keys().collect();
        let documented_fields: BTreeSet<&String> = properties.keys().collect();
        assert_eq!(
            fields, documented_fields,
            "{name}: properties vs serde fields"
        );

        let required: BTreeSet<&String> = fields
            .iter()
            .copied()
            .filter(|k| !(check.accepts)(with_field(&check.sample, k, None)))
            .collect();
        let documented_required: BTreeSet<&String> = schema["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(|s| {
                        properties
                            .get_key_value(s)
                            .expect("required field is a property")
                            .0
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(required, documented_required, "{name}: required fields");

        let strict = !(check.accepts)(with_field(&check.sample, "no_such_field", Some(json!(1))));
        let closed = schema["additionalProperties"] == json!(false);
        assert_eq!(
            strict, closed,
            "{name}: additionalProperties: false iff unknown fields are rejected"
        );

        let enums: BTreeMap<&str, &Vec<Value>> = check.enums.iter().map(|(k, v)| (*k, v)).collect();
        for (key, value) in sample {
            let property = &properties[key];
            let what = format!("{name}.{key}");

            let nullable = (check.accepts)(with_field(&check.sample, key, Some(Value::Null)));
            assert_eq!(
                property["nullable"] == json!(true),
                nullable,
                "{what}: nullable"
            );

            let documented_type =
                if property.get("$ref").is_some() || property.get("allOf").is_some() {
                    "object"
                } else {
                    property["type"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{what} has no type"))
                };
            assert_eq!(documented_type, json_type(value), "{what}: type");

            // A property that refers to another schema holds a value of that schema's type.
            let nested: Vec<(&Value, &Value)> = match value {
                Value::Array(items) => items.iter().map(|v| (&property["items"], v)).collect(),
                _ => vec![(property, value)],
            };
            assert!(
                !nested.is_empty() || property["items"].get("$ref").is_none(),
                "{what}: the sample has no items to check"
            );
            for (property, value) in nested {
                if let Some(referenced) = referenced_schema(property) {
                    let check = checks
                        .iter()
                        .find(|c| c.name == referenced)
                        .unwrap_or_else(|| panic!("{what} refers to {referenced}, not checked"));
                    assert!(
                        (check.accepts)(value.clone()),
                        "{what}: the value {value} is not a {referenced}"
                    );
                    assert_eq!(
                        object(value, &what).keys().collect::<BTreeSet<_>>(),
                        object(&check.sample, referenced)
                            .keys()
                            .collect::<BTreeSet<_>>(),
                        "{what}: the nested sample sets every field of {referenced}"
                    );
                }
            }

            match (property.get("enum"), enums.get(key.as_str())) {
                (Some(documented), Some(variants)) => {
                    let documented: BTreeSet<String> = documented
                        .as_array()
                        .expect("enum list")
                        .iter()
                        .map(Value::to_string)
                        .collect();
                    let variants: BTreeSet<String> =
                        variants.iter().map(Value::to_string).collect();
                    assert_eq!(documented, variants, "{what}: enum values");
                    for variant in &variants {
                        let variant: Value =
                            serde_json::from_str(variant).expect("variant is JSON");
                        assert!(
                            (check.accepts)(with_field(&check.sample, key, Some(variant))),
                            "{what}"
                        );
                    }
                    let bogus = with_field(&check.sample, key, Some(json!("NoSuchVariant")));
                    assert!(
                        !(check.accepts)(bogus),
                        "{what}: values outside the enum are rejected"
                    );
                }
                (None, None) => {}
                (Some(_), None) => {
                    panic!("{what}: documented as an enum, but no variants are checked")
                }
                (None, Some(_)) => panic!("{what}: an enum in Rust, but not documented as one"),
            }
        }
    }
}

#[test]
fn documented_limits_match_the_config_constants() {
    let doc = document();
    let machine = &doc["components"]["schemas"]["MachineConfig"]["properties"];
    assert_eq!(machine["vcpu_count"]["minimum"], json!(1));
    assert_eq!(machine["vcpu_count"]["maximum"], json!(MAX_VCPUS));
    assert_eq!(machine["mem_size_mib"]["minimum"], json!(MIN_MEM_MIB));
    assert_eq!(machine["mem_size_mib"]["maximum"], json!(MAX_MEM_MIB));
}

#[test]
fn documented_drive_rules_match_the_code() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];

    let bucket = &schemas["Bucket"]["properties"];
    let rate_min = bucket["rate"]["minimum"].as_u64().expect("rate minimum");
    let rate_max = bucket["rate"]["maximum"].as_u64().expect("rate maximum");
    let burst_max = bucket["burst"]["maximum"].as_u64().expect("burst maximum");
    let valid = |rate, burst| {
        Limits {
            bps: Some(Bucket { rate, burst }),
            ..Default::default()
        }
        .validate()
        .is_ok()
    };
    assert!(valid(rate_min, 0) && valid(rate_max, burst_max));
    assert!(
        !valid(rate_min - 1, 0),
        "a rate below the documented minimum"
    );
    assert!(
        !valid(rate_max + 1, 0),
        "a rate above the documented maximum"
    );
    assert!(!valid(rate_min, burst_max + 1), "a burst above the maximum");

    let size = &schemas["DrivePatch"]["properties"]["size_bytes"];
    let multiple = size["multipleOf"].as_u64().expect("size_bytes multipleOf");
    let minimum = size["minimum"].as_u64().expect("size_bytes minimum");
    let patch = |size| DrivePatch {
        drive_id: "d".into(),
        size_bytes: Some(size),
        allow_shrink: false,
        discard_data: false,
        limits: None,
    };
    assert!(patch(minimum).validate().is_ok());
    assert!(patch(multiple * 3).validate().is_ok());
    assert!(patch(multiple * 3 + 1).validate().is_err());
    assert!(patch(minimum - multiple).validate().is_err());

    let route = "/drives/{drive_id}/snapshots/{snapshot_name}";
    let parameters = doc["paths"][route]["put"]["parameters"]
        .as_array()
        .expect("parameters");
    let name = parameters
        .iter()
        .find(|p| p["name"] == json!("snapshot_name"))
        .expect("snapshot_name is documented");
    assert_eq!(name["schema"]["pattern"], json!(SNAPSHOT_NAME_PATTERN));
    assert_eq!(name["schema"]["maxLength"], json!(MAX_SNAPSHOT_NAME_LEN));
    assert_eq!(
        schemas["DriveSnapshot"]["properties"]["name"]["pattern"],
        json!(SNAPSHOT_NAME_PATTERN)
    );
}

/// Every `$ref` in the document names something the document defines.
#[test]
fn references_resolve() {
    fn visit(doc: &Value, value: &Value, at: &str) {
        match value {
            Value::Object(fields) => {
                for (key, child) in fields {
                    if key == "$ref" {
                        let target = child.as_str().expect("$ref is a string");
                        let pointer = target
                            .strip_prefix('#')
                            .unwrap_or_else(|| panic!("{at}: {target} is not local"));
                        assert!(
                            doc.pointer(pointer).is_some(),
                            "{at}: {target} does not exist"
                        );
                    } else {
                        visit(doc, child, &format!("{at}/{key}"));
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    visit(doc, child, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }
    let doc = document();
    visit(&doc, &doc, "");
}
