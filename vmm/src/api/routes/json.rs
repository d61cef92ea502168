//! Decoding of JSON request bodies into the API's typed structs, with errors that name the
//! field, line and column at fault.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::ApiRequest;
use crate::api::ApiError;

/// 415 Unsupported Media Type.
const UNSUPPORTED_MEDIA_TYPE: u16 = 415;

/// Whether a body sent with this `Content-Type` is decoded as JSON: `application/json` or
/// any `+json` type, with or without parameters such as `charset`. Also
/// `application/x-www-form-urlencoded`, because that is what `curl -d` sends unless told
/// otherwise; the body must still be JSON.
pub(super) fn is_accepted_media_type(content_type: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(content_type) else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "application/x-www-form-urlencoded"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Decodes the body of `request` as a `T`, described as `what` in errors.
///
/// Errors: a declared non-JSON `Content-Type` (415); an empty body, malformed JSON, unknown
/// fields, missing fields, wrong types or out-of-range numbers, and trailing data (400).
/// An array where an object belongs is a wrong type too, although serde would accept it
/// as the struct's fields in order.
pub(super) fn parse_body<T: DeserializeOwned + Serialize>(
    request: &ApiRequest<'_>,
    what: &str,
) -> Result<T, ApiError> {
    if let Some(content_type) = request.content_type {
        if !is_accepted_media_type(content_type) {
            return Err(ApiError {
                status: UNSUPPORTED_MEDIA_TYPE,
                message: format!(
                    "unsupported Content-Type `{}` on {} {}: the body must be JSON, sent as \
                     `Content-Type: application/json`",
                    String::from_utf8_lossy(content_type),
                    request.method,
                    request.path
                ),
            });
        }
    }
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "missing request body: {} {} expects a JSON {what} object",
            request.method, request.path
        )));
    }

    let mut deserializer = serde_json::Deserializer::from_slice(request.body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| ApiError::bad_request(format!("invalid {what} body: {}", describe(&e))))?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(format!("invalid {what} body: {e}")))?;
    reject_arrays_as_objects(request.body, &value)
        .map_err(|e| ApiError::bad_request(format!("invalid {what} body: {e}")))?;
    Ok(value)
}

/// Fails if the JSON `body` has an array where `value`, re-encoded, has an object: serde
/// decodes a struct from a sequence of its fields, which the API does not accept.
fn reject_arrays_as_objects<T: Serialize>(body: &[u8], value: &T) -> Result<(), String> {
    // Both succeed: the body was just decoded, and the API's bodies always encode.
    let (Ok(input), Ok(output)) = (
        serde_json::from_slice::<Value>(body),
        serde_json::to_value(value),
    ) else {
        return Ok(());
    };
    match array_for_object(&input, &output) {
        None => Ok(()),
        Some(path) if path.is_empty() => Err("expected a JSON object, found an array".to_string()),
        Some(path) => Err(format!(
            "field `{path}`: expected a JSON object, found an array"
        )),
    }
}

/// The dotted path of the first place where `input` has an array and `output` an object.
fn array_for_object(input: &Value, output: &Value) -> Option<String> {
    match (input, output) {
        (Value::Array(_), Value::Object(_)) => Some(String::new()),
        (Value::Object(input), Value::Object(output)) => input.iter().find_map(|(key, value)| {
            let inner = array_for_object(value, output.get(key)?)?;
            Some(if inner.is_empty() {
                key.clone()
            } else if inner.starts_with('[') {
                format!("{key}{inner}")
            } else {
                format!("{key}.{inner}")
            })
        }),
        (Value::Array(input), Value::Array(output)) => input
            .iter()
            .zip(output)
            .enumerate()
            .find_map(|(i, (a, b))| {
                let inner = array_for_object(a, b)?;
                Some(if inner.is_empty() || inner.starts_with('[') {
                    format!("[{i}]{inner}")
                } else {
                    format!("[{i}].{inner}")
                })
            }),
        _ => None,
    }
}

/// serde's explanation, prefixed with the path of the field at fault unless the explanation
/// already names it (as it does for an unknown field at the top level).
fn describe(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    let inner = error.inner().to_string();
    if path == "." || path.is_empty() || inner.starts_with(&format!("unknown field `{path}`")) {
        inner
    } else {
        format!("field `{path}`: {inner}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_not_objects() {
        use serde_json::json;
        let find = |input: Value, output: Value| array_for_object(&input, &output);
        assert_eq!(find(json!([1, 2]), json!({"a": 1})).as_deref(), Some(""));
        assert_eq!(
            find(json!({"a": {"b": []}}), json!({"a": {"b": {}}, "c": 1})).as_deref(),
            Some("a.b")
        );
        assert_eq!(
            find(json!({"a": [{}, [1]]}), json!({"a": [{}, {"x": 1}]})).as_deref(),
            Some("a[1]")
        );
        assert_eq!(
            find(json!({"a": [[{"b": []}]]}), json!({"a": [[{"b": {}}]]})).as_deref(),
            Some("a[0][0].b")
        );
        assert_eq!(find(json!({"a": [1]}), json!({"a": [1]})), None);
        assert_eq!(find(json!({"a": 1}), json!({"a": 1, "b": {}})), None);
        assert_eq!(find(json!({"skipped": []}), json!({})), None);
    }

    #[test]
    fn accepted_media_types() {
        assert!(is_accepted_media_type(b"application/json"));
        assert!(is_accepted_media_type(b"Application/JSON; charset=utf-8"));
        assert!(is_accepted_media_type(b"application/merge-patch+json"));
        assert!(!is_accepted_media_type(b"text/plain"));
        assert!(is_accepted_media_type(b"application/x-www-form-urlencoded"));
        assert!(!is_accepted_media_type(b"multipart/form-data; boundary=x"));
        assert!(!is_accepted_media_type(b"text/json+xml"));
        assert!(!is_accepted_media_type(b"\xff"));
        assert!(!is_accepted_media_type(b""));
    }
}
