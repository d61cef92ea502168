//! Decoding of JSON request bodies into the API's typed structs, with errors that name the
//! field, line and column at fault.

use serde::de::DeserializeOwned;

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
pub(super) fn parse_body<T: DeserializeOwned>(
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
    Ok(value)
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
