//! Matching request paths against route templates such as
//! `/drives/{drive_id}/snapshots/{snapshot_name}`.

/// The parameters of a matched template, in template order: each `{name}` with the raw
/// (still percent-encoded) text of the path segment it matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PathParams<'t, 'p> {
    params: Vec<(&'t str, &'p str)>,
}

impl<'t, 'p> PathParams<'t, 'p> {
    /// The raw segment matched by `{name}`, if the template has that parameter.
    pub(super) fn get(&self, name: &str) -> Option<&'p str> {
        self.params
            .iter()
            .find(|(param, _)| *param == name)
            .map(|(_, raw)| *raw)
    }

    /// Every `(name, raw segment)` pair, in template order.
    #[cfg(test)]
    pub(super) fn pairs(&self) -> &[(&'t str, &'p str)] {
        &self.params
    }
}

/// Matches `path` against `template`. Literal segments must be equal; a `{name}` segment
/// matches any non-empty segment. Returns `None` if the path does not match, otherwise the
/// template's parameters with the raw text of the segments they matched.
pub(super) fn match_template<'t, 'p>(
    template: &'t str,
    path: &'p str,
) -> Option<PathParams<'t, 'p>> {
    let mut template_segments = template.split('/');
    let mut path_segments = path.split('/');
    let mut params = PathParams::default();
    loop {
        match (template_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(t), Some(p)) => match param_name(t) {
                Some(_) if p.is_empty() => return None,
                Some(name) => params.params.push((name, p)),
                None if t == p => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// The name of a `{name}` template segment, or `None` for a literal segment.
pub(super) fn param_name(segment: &str) -> Option<&str> {
    segment
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .filter(|name| !name.is_empty())
}

/// Decodes `%XX` escapes in a path segment. Fails on a malformed escape or if the result is
/// not UTF-8; the error names the offending segment.
pub(super) fn percent_decode(segment: &str) -> Result<String, String> {
    decode_escapes(segment, "path segment", false)
}

/// Decodes `%XX` escapes (and, if `plus_is_space`, `+` as a space) in `text`, which is
/// described as `what` in errors.
pub(super) fn decode_escapes(
    text: &str,
    what: &str,
    plus_is_space: bool,
) -> Result<String, String> {
    let segment = text;
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
                _ => return Err(format!("malformed percent-escape in {what} `{segment}`")),
            }
        } else if plus_is_space && bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what} `{segment}` does not decode to UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs<'t, 'p>(template: &'t str, path: &'p str) -> Option<Vec<(&'t str, &'p str)>> {
        match_template(template, path).map(|params| params.pairs().to_vec())
    }

    #[test]
    fn literal_paths_match_exactly() {
        assert_eq!(pairs("/", "/"), Some(vec![]));
        assert_eq!(pairs("/vm/config", "/vm/config"), Some(vec![]));
        assert_eq!(pairs("/vm/config", "/vm/config/"), None);
        assert_eq!(pairs("/vm/config", "/vm"), None);
        assert_eq!(pairs("/vm", "/vm/config"), None);
        assert_eq!(pairs("/", "/machine-config"), None);
    }

    #[test]
    fn parameters_match_one_non_empty_segment() {
        assert_eq!(
            pairs("/drives/{drive_id}", "/drives/root"),
            Some(vec![("drive_id", "root")])
        );
        assert_eq!(pairs("/drives/{drive_id}", "/drives/"), None);
        assert_eq!(pairs("/drives/{drive_id}", "/drives"), None);
        assert_eq!(pairs("/drives/{drive_id}", "/drives/a/b"), None);
        assert_eq!(pairs("/drives/{drive_id}", "/network-interfaces/a"), None);
    }

    #[test]
    fn several_parameters_are_returned_by_name() {
        let template = "/drives/{drive_id}/snapshots/{snapshot_name}";
        let params = match_template(template, "/drives/root/snapshots/s%201").unwrap();
        assert_eq!(
            params.pairs(),
            &[("drive_id", "root"), ("snapshot_name", "s%201")]
        );
        assert_eq!(params.get("drive_id"), Some("root"));
        assert_eq!(params.get("snapshot_name"), Some("s%201"));
        assert_eq!(params.get("iface_id"), None);

        assert_eq!(pairs(template, "/drives/root/snapshots/"), None);
        assert_eq!(pairs(template, "/drives//snapshots/a"), None);
        assert_eq!(pairs(template, "/drives/root/snapshot/a"), None);
        assert_eq!(pairs(template, "/drives/root/snapshots"), None);
        assert_eq!(pairs(template, "/drives/root/snapshots/a/b"), None);
        assert_eq!(
            pairs("/drives/{drive_id}/snapshots", "/drives/x/snapshots"),
            Some(vec![("drive_id", "x")])
        );
        assert_eq!(
            pairs("/{a}/{b}", "/1/2"),
            Some(vec![("a", "1"), ("b", "2")])
        );
    }

    #[test]
    fn template_segments() {
        assert_eq!(param_name("{drive_id}"), Some("drive_id"));
        assert_eq!(param_name("{}"), None);
        assert_eq!(param_name("drives"), None);
        assert_eq!(param_name("{open"), None);
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
