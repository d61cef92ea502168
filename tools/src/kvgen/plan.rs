//! The request sequence: a pure function of the configuration and the seed, so the same
//! seed always yields the same requests, from the same clients, in the same order —
//! whatever the timing or the replies.

use super::wire::Op;

/// Key of the 256-byte value in the trigger sequence.
pub const TRIGGER_BLOB_KEY: &str = "trigger:blob";
/// Key written between storing the blob and reading it back.
pub const TRIGGER_NOTE_KEY: &str = "trigger:note";
/// Length of the trigger's value: the service's maximum, which its log records as 0.
pub const TRIGGER_VALUE_LEN: usize = 256;
/// Printable bytes random values are drawn from (space included).
const VALUE_BYTES: std::ops::RangeInclusive<u8> = 0x20..=0x7e;

/// SplitMix64: small, fast and fully specified, so sequences never change with a
/// dependency's version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// Random client number i.
    Client(usize),
    /// The trigger client.
    Trigger,
}

/// One planned request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Position in the plan (0-based).
    pub seq: u64,
    /// Request id on the wire (seq + 1).
    pub id: u32,
    /// Sender.
    pub sender: Sender,
    /// What it asks.
    pub op: Op,
}

/// Relative weights of PUT, GET and DEL in random traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Weight of PUT.
    pub put: u32,
    /// Weight of GET.
    pub get: u32,
    /// Weight of DEL.
    pub del: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            put: 40,
            get: 40,
            del: 20,
        }
    }
}

/// What the plan is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    /// Seed of everything random.
    pub seed: u64,
    /// Random clients.
    pub clients: usize,
    /// Random requests.
    pub requests: u64,
    /// Size of the key space: keys are `<prefix><n:05>` for n in 0..keys.
    pub keys: u32,
    /// Prefix of every random key.
    pub key_prefix: String,
    /// Shortest and longest random value.
    pub value_len: (usize, usize),
    /// Operation mix.
    pub mix: Mix,
    /// First GET every key of the key space, in order (to check a reloaded store).
    pub sweep: bool,
    /// Send the trigger sequence after this many random requests (and stop there).
    pub trigger_after: Option<u64>,
    /// End with QUIT (not after a trigger: the service is gone by then).
    pub quit: bool,
}

impl PlanSpec {
    /// Key number `n` of the key space.
    pub fn key(&self, n: u64) -> String {
        format!("{}{:05}", self.key_prefix, n)
    }

    /// The whole plan, in order.
    pub fn plan(&self) -> Vec<Planned> {
        let mut out = Vec::new();
        let mut push = |sender: Sender, op: Op| {
            let seq = out.len() as u64;
            out.push(Planned {
                seq,
                id: (seq + 1) as u32,
                sender,
                op,
            });
        };
        if self.sweep {
            for n in 0..u64::from(self.keys) {
                let client = (n % self.clients as u64) as usize;
                push(Sender::Client(client), Op::Get { key: self.key(n) });
            }
        }
        // Random traffic and the trigger draw from separate generators, so a trigger
        // leaves the random requests before it unchanged.
        let mut rng = Rng::new(self.seed);
        let mut trigger_rng = Rng::new(self.seed ^ 0x7472_6967_6765_7221);
        let total = u64::from(self.mix.put) + u64::from(self.mix.get) + u64::from(self.mix.del);
        for i in 0..=self.requests {
            if self.trigger_after == Some(i) {
                for (sender, op) in trigger_sequence(&mut trigger_rng) {
                    push(sender, op);
                }
                return out;
            }
            if i == self.requests {
                break;
            }
            let client = rng.below(self.clients as u64) as usize;
            let pick = rng.below(total);
            let key = self.key(rng.below(u64::from(self.keys)));
            let op = if pick < u64::from(self.mix.put) {
                let (lo, hi) = self.value_len;
                let len = lo + rng.below((hi - lo + 1) as u64) as usize;
                Op::Put {
                    key,
                    value: random_text(&mut rng, len),
                }
            } else if pick < u64::from(self.mix.put) + u64::from(self.mix.get) {
                Op::Get { key }
            } else {
                Op::Del { key }
            };
            push(Sender::Client(client), op);
        }
        if self.quit {
            push(Sender::Client(0), Op::Quit);
        }
        out
    }
}

/// The requests that make the service crash (see the `kv` workload's documentation):
/// a value of exactly 256 bytes, another write, and a read of the first key.
pub fn trigger_sequence(rng: &mut Rng) -> Vec<(Sender, Op)> {
    vec![
        (
            Sender::Trigger,
            Op::Put {
                key: TRIGGER_BLOB_KEY.into(),
                value: random_text(rng, TRIGGER_VALUE_LEN),
            },
        ),
        (
            Sender::Trigger,
            Op::Put {
                key: TRIGGER_NOTE_KEY.into(),
                value: random_text(rng, 8),
            },
        ),
        (
            Sender::Trigger,
            Op::Get {
                key: TRIGGER_BLOB_KEY.into(),
            },
        ),
    ]
}

/// `len` printable ASCII characters.
fn random_text(rng: &mut Rng, len: usize) -> String {
    let span = u64::from(VALUE_BYTES.end() - VALUE_BYTES.start() + 1);
    (0..len)
        .map(|_| char::from(VALUE_BYTES.start() + rng.below(span) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> PlanSpec {
        PlanSpec {
            seed,
            clients: 4,
            requests: 2000,
            keys: 100,
            key_prefix: "key-".into(),
            value_len: (4, 64),
            mix: Mix::default(),
            sweep: false,
            trigger_after: None,
            quit: true,
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        assert_eq!(spec(7).plan(), spec(7).plan());
        assert_ne!(spec(7).plan(), spec(8).plan());
    }

    #[test]
    fn sequence_is_pinned() {
        // The sequence for a seed never changes: recordings and tests rely on it.
        let mut rng = Rng::new(1);
        assert_eq!(rng.next_u64(), 0x910a_2dec_8902_5cc1);
        assert_eq!(rng.next_u64(), 0xbeeb_8da1_658e_ec67);
        let plan = spec(1).plan();
        let head: Vec<(Sender, Op)> = plan[..3].iter().map(|p| (p.sender, p.op.clone())).collect();
        let get = |k: &str| Op::Get { key: k.into() };
        assert_eq!(
            head,
            [
                (Sender::Client(2), get("key-00097")),
                (Sender::Client(1), get("key-00076")),
                (Sender::Client(3), get("key-00028")),
            ]
        );
    }

    #[test]
    fn mix_clients_and_values_follow_the_spec() {
        let plan = spec(3).plan();
        assert_eq!(plan.len(), 2001);
        assert_eq!(plan.last().map(|p| &p.op), Some(&Op::Quit));
        let (mut puts, mut gets, mut dels) = (0, 0, 0);
        let mut clients = [0; 4];
        for p in &plan[..2000] {
            assert_eq!(p.id as u64, p.seq + 1);
            let Sender::Client(c) = p.sender else {
                panic!("trigger client in random traffic")
            };
            clients[c] += 1;
            match &p.op {
                Op::Put { key, value } => {
                    puts += 1;
                    assert!((4..=64).contains(&value.len()), "{value:?}");
                    assert!(key.starts_with("key-") && key.len() == 9);
                }
                Op::Get { .. } => gets += 1,
                Op::Del { .. } => dels += 1,
                Op::Quit => panic!("quit in the middle"),
            }
        }
        assert!(
            (700..900).contains(&puts) && (700..900).contains(&gets),
            "{puts} {gets}"
        );
        assert!((300..500).contains(&dels), "{dels}");
        assert!(clients.iter().all(|&n| n > 400), "{clients:?}");
    }

    #[test]
    fn trigger_keeps_the_random_prefix_and_ends_the_plan() {
        let plain = spec(5).plan();
        let mut s = spec(5);
        s.trigger_after = Some(500);
        let with = s.plan();
        assert_eq!(with.len(), 503);
        assert_eq!(with[..500], plain[..500]);
        let t = &with[500..];
        assert!(t.iter().all(|p| p.sender == Sender::Trigger));
        match &t[0].op {
            Op::Put { key, value } => {
                assert_eq!(key, TRIGGER_BLOB_KEY);
                assert_eq!(value.len(), 256);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&t[1].op, Op::Put { key, .. } if key == TRIGGER_NOTE_KEY));
        assert_eq!(
            t[2].op,
            Op::Get {
                key: TRIGGER_BLOB_KEY.into()
            }
        );
        // Random traffic never carries a 256-byte value.
        assert!(plain
            .iter()
            .all(|p| !matches!(&p.op, Op::Put { value, .. } if value.len() == 256)));
    }

    #[test]
    fn sweep_reads_every_key_first() {
        let mut s = spec(2);
        s.sweep = true;
        s.requests = 10;
        let plan = s.plan();
        assert_eq!(plan.len(), 100 + 10 + 1);
        for (n, p) in plan[..100].iter().enumerate() {
            assert_eq!(
                p.op,
                Op::Get {
                    key: format!("key-{n:05}")
                }
            );
        }
    }
}
