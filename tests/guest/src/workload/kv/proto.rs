//! The kv request and reply format: one ASCII request per UDP datagram, one reply
//! datagram per request (see the `kv` module documentation for the grammar).

/// Longest key, in bytes.
pub const MAX_KEY: usize = 32;
/// Longest value, in bytes.
pub const MAX_VALUE: usize = 256;

/// What a request asks for.
pub enum Op<'a> {
    Put { key: &'a [u8], value: &'a [u8] },
    Get { key: &'a [u8] },
    Del { key: &'a [u8] },
    Quit,
}

/// A parsed request.
pub struct Request<'a> {
    pub id: u32,
    pub op: Op<'a>,
}

/// Why a request was refused (the reply is `<id> ERR <reason>`).
#[derive(Clone, Copy)]
pub enum Refusal {
    BadRequest,
    KeyTooLong,
    ValueTooLong,
    Full,
    Io,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad-request",
            Refusal::KeyTooLong => "key-too-long",
            Refusal::ValueTooLong => "value-too-long",
            Refusal::Full => "full",
            Refusal::Io => "io",
        }
    }
}

/// Parse one request datagram. A refused request still yields its id when the id
/// itself could be read (0 otherwise).
pub fn parse(datagram: &[u8]) -> Result<Request<'_>, (u32, Refusal)> {
    let d = datagram.strip_suffix(b"\n").unwrap_or(datagram);
    let (id_text, rest) = split_word(d);
    let id = parse_id(id_text).ok_or((0, Refusal::BadRequest))?;
    let bad = (id, Refusal::BadRequest);
    let (verb, rest) = split_word(rest.ok_or(bad)?);
    let op = match (verb, rest) {
        (b"QUIT", None) => Op::Quit,
        (b"GET", Some(key)) => Op::Get {
            key: check_key(id, key)?,
        },
        (b"DEL", Some(key)) => Op::Del {
            key: check_key(id, key)?,
        },
        (b"PUT", Some(rest)) => {
            let (key, value) = split_word(rest);
            let value = value.ok_or(bad)?;
            let key = check_key(id, key)?;
            if value.len() > MAX_VALUE {
                return Err((id, Refusal::ValueTooLong));
            }
            Op::Put { key, value }
        }
        _ => return Err(bad),
    };
    Ok(Request { id, op })
}

/// The bytes before the first space, and what follows that space (None without one).
fn split_word(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// 1-10 decimal digits, at most u32::MAX.
fn parse_id(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    u32::try_from(v).ok()
}

/// A key is 1..=MAX_KEY bytes of printable ASCII other than space.
fn check_key(id: u32, key: &[u8]) -> Result<&[u8], (u32, Refusal)> {
    if key.is_empty() || !key.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err((id, Refusal::BadRequest));
    }
    if key.len() > MAX_KEY {
        return Err((id, Refusal::KeyTooLong));
    }
    Ok(key)
}

/// Writes a reply into a byte buffer (long replies are cut at its end).
pub struct Reply<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Reply<'a> {
    /// A reply to request `id`, starting with `<id>`.
    pub fn new(buf: &'a mut [u8], id: u32) -> Self {
        let mut r = Self { buf, len: 0 };
        let mut digits = [0u8; 10];
        let mut n = 0;
        let mut v = id;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        digits[..n].reverse();
        r.push(&digits[..n]);
        r
    }

    /// Append bytes.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.len
    }
}
