//! The kv service's datagrams (see the test guest's README, workload `kv`): requests
//! `<id> PUT <key> <value>`, `<id> GET <key>`, `<id> DEL <key>`, `<id> QUIT`; replies
//! `<id> OK`, `<id> OK <value>`, `<id> NOT_FOUND`, `<id> ERR <reason>`.

/// Longest key the service takes.
pub const MAX_KEY: usize = 32;
/// Longest value the service takes.
pub const MAX_VALUE: usize = 256;

/// A request without its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
    },
    /// Delete `key`.
    Del {
        /// The key.
        key: String,
    },
    /// End the service.
    Quit,
}

impl Op {
    /// The verb on the wire.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Put { .. } => "PUT",
            Op::Get { .. } => "GET",
            Op::Del { .. } => "DEL",
            Op::Quit => "QUIT",
        }
    }

    /// The key, if the operation has one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Del { key } => Some(key),
            Op::Quit => None,
        }
    }

    /// The datagram for request `id`.
    pub fn encode(&self, id: u32) -> Vec<u8> {
        match self {
            Op::Put { key, value } => format!("{id} PUT {key} {value}"),
            Op::Get { key } => format!("{id} GET {key}"),
            Op::Del { key } => format!("{id} DEL {key}"),
            Op::Quit => format!("{id} QUIT"),
        }
        .into_bytes()
    }
}

/// A reply, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK` (PUT, DEL, QUIT).
    Ok,
    /// `OK <value>` (GET).
    Value(String),
    /// `NOT_FOUND`.
    NotFound,
    /// `ERR <reason>`.
    Err(String),
}

impl Reply {
    /// The status word.
    pub fn status(&self) -> &'static str {
        match self {
            Reply::Ok | Reply::Value(_) => "OK",
            Reply::NotFound => "NOT_FOUND",
            Reply::Err(_) => "ERR",
        }
    }
}

/// Parse a reply datagram into its id and reply; None if it is not one.
pub fn parse_reply(datagram: &[u8]) -> Option<(u32, Reply)> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (id, rest) = text.split_once(' ')?;
    if id.is_empty() || id.len() > 10 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = id.parse().ok()?;
    let reply = match rest {
        "OK" => Reply::Ok,
        "NOT_FOUND" => Reply::NotFound,
        _ => {
            if let Some(v) = rest.strip_prefix("OK ") {
                Reply::Value(v.to_string())
            } else if let Some(reason) = rest.strip_prefix("ERR ") {
                Reply::Err(reason.to_string())
            } else {
                return None;
            }
        }
    };
    Some((id, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_as_documented() {
        let put = Op::Put {
            key: "k".into(),
            value: "a b ".into(),
        };
        assert_eq!(put.encode(7), b"7 PUT k a b ");
        assert_eq!(Op::Get { key: "k".into() }.encode(8), b"8 GET k");
        assert_eq!(Op::Del { key: "k".into() }.encode(9), b"9 DEL k");
        assert_eq!(Op::Quit.encode(10), b"10 QUIT");
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply(b"7 OK"), Some((7, Reply::Ok)));
        assert_eq!(
            parse_reply(b"7 OK "),
            Some((7, Reply::Value(String::new())))
        );
        assert_eq!(
            parse_reply(b"8 OK  x y"),
            Some((8, Reply::Value(" x y".into())))
        );
        assert_eq!(parse_reply(b"9 NOT_FOUND"), Some((9, Reply::NotFound)));
        assert_eq!(
            parse_reply(b"0 ERR bad-request"),
            Some((0, Reply::Err("bad-request".into())))
        );
        for bad in [&b""[..], b"OK", b"x OK", b"1 MAYBE", b"1", b"\xff OK"] {
            assert_eq!(parse_reply(bad), None, "{bad:?}");
        }
    }
}
