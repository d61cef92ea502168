//! Matching request paths against route templates such as `/drives/{drive_id}`.

/// Matches `path` against `template`. Literal segments must be equal; a `{name}` segment
/// matches any non-empty segment. Returns `None` if the path does not match, otherwise the
/// raw (still percent-encoded) text of the template's parameter segment, if it has one.
pub(super) fn match_template<'p>(template: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut template_segments = template.split('/');
    let mut path_segments = path.split('/');
    let mut param = None;
    loop {
        match (template_segments.next(), path_segments.next()) {
            (None, None) => return Some(param),
            (Some(t), Some(p)) if is_param(t) => {
                if p.is_empty() {
                    return None;
                }
                param = Some(p);
            }
            (Some(t), Some(p)) if t == p => {}
            _ => return None,
        }
    }
}

/// Whether a template segment is a `{name}` parameter.
fn is_param(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
}

/// Decodes `%XX` escapes in a path segment. Fails on a malformed escape or if the result is
/// not UTF-8; the error names the offending segment.
pub(super) fn percent_decode(segment: &str) -> Result<String, String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let low = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (high, low) {
                (Some(h), Some(l)) => {
                    // Two hex digits always fit in a byte.
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    return Err(format!(
                        "malformed percent-escape in path segment `{segment}`"
                    ))
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| format!("path segment `{segment}` does not decode to UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_paths_match_exactly() {
        assert_eq!(match_template("/", "/"), Some(None));
        assert_eq!(match_template("/vm/config", "/vm/config"), Some(None));
        assert_eq!(match_template("/vm/config", "/vm/config/"), None);
        assert_eq!(match_template("/vm/config", "/vm"), None);
        assert_eq!(match_template("/vm", "/vm/config"), None);
        assert_eq!(match_template("/", "/machine-config"), None);
    }

    #[test]
    fn parameters_match_one_non_empty_segment() {
        assert_eq!(
            match_template("/drives/{drive_id}", "/drives/root"),
            Some(Some("root"))
        );
        assert_eq!(match_template("/drives/{drive_id}", "/drives/"), None);
        assert_eq!(match_template("/drives/{drive_id}", "/drives"), None);
        assert_eq!(match_template("/drives/{drive_id}", "/drives/a/b"), None);
        assert_eq!(
            match_template("/drives/{drive_id}", "/network-interfaces/a"),
            None
        );
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("root").as_deref(), Ok("root"));
        assert_eq!(percent_decode("a%20b%2f").as_deref(), Ok("a b/"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Ok("é"));
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("a%zz").is_err());
        assert!(percent_decode("%ff").is_err());
    }
}
