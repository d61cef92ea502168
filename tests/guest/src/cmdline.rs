//! Kernel command-line parameters: space-separated `key=value` words.

/// The command line, as bytes (it need not be UTF-8).
#[derive(Clone, Copy)]
pub struct Cmdline {
    raw: &'static [u8],
}

/// One `virtio_mmio.device=<size>@<base>:<irq>` entry.
#[derive(Clone, Copy)]
pub struct VirtioMmioSpec {
    pub size: u64,
    pub base: u64,
    pub irq: u32,
}

impl Cmdline {
    pub fn new(raw: &'static [u8]) -> Self {
        Self { raw }
    }

    /// The raw command line.
    pub fn raw(&self) -> &'static [u8] {
        self.raw
    }

    fn words(&self) -> impl Iterator<Item = &'static [u8]> {
        self.raw
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
    }

    /// Value of the last `key=value` word for `key`.
    pub fn get(&self, key: &str) -> Option<&'static [u8]> {
        let key = key.as_bytes();
        self.words()
            .filter_map(|w| {
                let rest = w.strip_prefix(key)?;
                rest.strip_prefix(b"=")
            })
            .last()
    }

    /// Numeric value of `key` (decimal or `0x` hex), `default` if absent.
    pub fn u64(&self, key: &str, default: u64) -> u64 {
        match self.get(key) {
            None => default,
            Some(v) => {
                parse_u64(v).unwrap_or_else(|| crate::fatal!("bad value for {}: {}", key, Bytes(v)))
            }
        }
    }

    /// The `virtio_mmio.device=` entries, in command-line order.
    pub fn virtio_devices(&self) -> impl Iterator<Item = VirtioMmioSpec> {
        self.words().filter_map(|w| {
            let v = w.strip_prefix(b"virtio_mmio.device=")?;
            Some(
                parse_virtio(v)
                    .unwrap_or_else(|| crate::fatal!("bad virtio_mmio.device entry: {}", Bytes(v))),
            )
        })
    }
}

/// Parse `<size>@<base>:<irq>[:<id>]`.
fn parse_virtio(v: &[u8]) -> Option<VirtioMmioSpec> {
    let at = v.iter().position(|&b| b == b'@')?;
    let size = parse_size(&v[..at])?;
    let rest = &v[at + 1..];
    let colon = rest.iter().position(|&b| b == b':')?;
    let base = parse_hex(&rest[..colon])?;
    let irq_field = &rest[colon + 1..];
    let irq_end = irq_field
        .iter()
        .position(|&b| b == b':')
        .unwrap_or(irq_field.len());
    let irq = parse_dec(&irq_field[..irq_end])?;
    Some(VirtioMmioSpec {
        size,
        base,
        irq: u32::try_from(irq).ok()?,
    })
}

/// Decimal or `0x`-prefixed hexadecimal.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    match v.strip_prefix(b"0x").or_else(|| v.strip_prefix(b"0X")) {
        Some(hex) => parse_hex_digits(hex),
        None => parse_dec(v),
    }
}

/// A size: a number with an optional K, M or G suffix (powers of 1024).
fn parse_size(v: &[u8]) -> Option<u64> {
    let (num, shift) = match v.last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 10),
        b'm' | b'M' => (&v[..v.len() - 1], 20),
        b'g' | b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    parse_u64(num)?.checked_mul(1 << shift)
}

/// Hexadecimal, with or without `0x`.
fn parse_hex(v: &[u8]) -> Option<u64> {
    parse_hex_digits(
        v.strip_prefix(b"0x")
            .or_else(|| v.strip_prefix(b"0X"))
            .unwrap_or(v),
    )
}

fn parse_hex_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(u64::from(d))
    })
}

fn parse_dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Displays bytes as text, replacing non-printable bytes with `?`.
pub struct Bytes<'a>(pub &'a [u8]);

impl core::fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            let c = if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            };
            core::fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}
