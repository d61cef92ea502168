//! Query strings: `name=value` pairs separated by `&`, form-encoded (`+` is a space, `%XX`
//! an escaped byte), e.g. `?snapshot_dir=%2Fvar%2Flib%2Freprise%2Fsnapshots`.

use super::path::decode_escapes;

/// The decoded parameters of a query string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// The value of `name`, if given.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The names given, in order.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(key, _)| key.as_str())
    }
}

/// Decodes one name or value: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(text: &str) -> Result<String, String> {
    decode_escapes(text, "query parameter", true)
}

/// Parses a raw query string (without the `?`). Empty pieces (`a=1&&b=2`) are skipped; a
/// piece without `=` has an empty value. Fails on a malformed escape, text that is not
/// UTF-8, an empty name, or a name given twice.
pub(super) fn parse(raw: &str) -> Result<QueryParams, String> {
    let mut params = QueryParams::default();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = decode(name)?;
        let value = decode(value)?;
        if name.is_empty() {
            return Err(format!("query parameter `{piece}` has no name"));
        }
        if params.get(&name).is_some() {
            return Err(format!("query parameter `{name}` is given twice"));
        }
        params.pairs.push((name, value));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded() {
        let q = parse("snapshot_dir=%2Fvar%2Flib%2Fsnaps&x=a+b%2B&flag&&").unwrap();
        assert_eq!(q.get("snapshot_dir"), Some("/var/lib/snaps"));
        assert_eq!(q.get("x"), Some("a b+"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("y"), None);
        assert_eq!(q.names().collect::<Vec<_>>(), ["snapshot_dir", "x", "flag"]);
        assert_eq!(parse("").unwrap(), QueryParams::default());
        assert_eq!(parse("a=%C3%A9").unwrap().get("a"), Some("é"));
        assert_eq!(parse("a=x=y").unwrap().get("a"), Some("x=y"));
    }

    #[test]
    fn bad_query_strings_are_refused_by_name() {
        assert!(parse("a=%zz").unwrap_err().contains("%zz"));
        assert!(parse("a=%ff").unwrap_err().contains("UTF-8"));
        assert!(parse("=1").unwrap_err().contains("no name"));
        assert!(parse("a=1&a=2").unwrap_err().contains("`a` is given twice"));
        assert!(parse("a=1&%61=2").unwrap_err().contains("twice"));
    }
}
