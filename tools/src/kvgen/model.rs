//! What the store should hold, and whether each reply agrees with it.
//!
//! The service handles requests one at a time in the order they arrive, and the
//! generator sends them from one thread, so replies are checked in sending order
//! against a model that applies each request as its reply says it was applied. A
//! request without a reply may or may not have taken effect: its key becomes unknown
//! until a reply tells again (a GET's answer, or a PUT's or DEL's).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::wire::{Op, Reply};

/// What is known of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Not in the store.
    Absent,
    /// In the store with this value.
    Present(String),
    /// Could be either.
    Unknown,
}

/// The model's content, as saved between runs (`--state-out`, `--state-in`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Keys known to be present, with their values.
    pub present: BTreeMap<String, String>,
    /// Keys known to be absent.
    pub absent: BTreeSet<String>,
    /// Keys whose state is unknown.
    pub unknown: BTreeSet<String>,
    /// True if keys not listed are unknown (else they are absent).
    pub others_unknown: bool,
}

/// How a reply compared with the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// As expected.
    Verified,
    /// Acceptable, but the model could not say exactly (an unknown key, a lost
    /// request, a full store).
    Unverified,
    /// Not what the model expected.
    Mismatch {
        /// What was expected, in wire form (`OK`, `OK <value>`, `NOT_FOUND`).
        expected: String,
    },
}

/// The model of the store.
#[derive(Debug, Clone)]
pub struct Model {
    keys: HashMap<String, KeyState>,
    others: KeyState,
}

impl Model {
    /// An empty store (a fresh disk).
    pub fn empty() -> Self {
        Model {
            keys: HashMap::new(),
            others: KeyState::Absent,
        }
    }

    /// A store of which nothing is known.
    pub fn unknown() -> Self {
        Model {
            keys: HashMap::new(),
            others: KeyState::Unknown,
        }
    }

    /// The model a previous run saved.
    pub fn from_state(state: &State) -> Self {
        let mut keys = HashMap::new();
        for (k, v) in &state.present {
            keys.insert(k.clone(), KeyState::Present(v.clone()));
        }
        for k in &state.absent {
            keys.insert(k.clone(), KeyState::Absent);
        }
        for k in &state.unknown {
            keys.insert(k.clone(), KeyState::Unknown);
        }
        let others = if state.others_unknown {
            KeyState::Unknown
        } else {
            KeyState::Absent
        };
        Model { keys, others }
    }

    /// The content, to save.
    pub fn state(&self) -> State {
        let mut s = State {
            others_unknown: self.others == KeyState::Unknown,
            ..State::default()
        };
        for (k, v) in &self.keys {
            match v {
                KeyState::Present(v) => {
                    s.present.insert(k.clone(), v.clone());
                }
                KeyState::Absent if !s.others_unknown => {}
                KeyState::Absent => {
                    s.absent.insert(k.clone());
                }
                KeyState::Unknown => {
                    s.unknown.insert(k.clone());
                }
            }
        }
        s
    }

    /// What is known of `key`.
    pub fn get(&self, key: &str) -> &KeyState {
        self.keys.get(key).unwrap_or(&self.others)
    }

    fn set(&mut self, key: &str, state: KeyState) {
        self.keys.insert(key.to_string(), state);
    }

    /// Take a request and its reply (None: no reply came) into account.
    pub fn apply(&mut self, op: &Op, reply: Option<&Reply>) -> Check {
        let Some(reply) = reply else {
            if let Op::Put { key, .. } | Op::Del { key } = op {
                self.set(key, KeyState::Unknown);
            }
            return Check::Unverified;
        };
        match op {
            Op::Quit => expect(reply, &Reply::Ok),
            Op::Put { key, value } => match reply {
                Reply::Ok => {
                    self.set(key, KeyState::Present(value.clone()));
                    Check::Verified
                }
                Reply::Err(reason) if reason == "full" => Check::Unverified,
                _ => {
                    self.set(key, KeyState::Unknown);
                    mismatch(&Reply::Ok)
                }
            },
            Op::Get { key } => {
                let expected = match self.get(key) {
                    KeyState::Absent => Some(Reply::NotFound),
                    KeyState::Present(v) => Some(Reply::Value(v.clone())),
                    KeyState::Unknown => None,
                };
                // Whatever the check says, the service's answer is now the best knowledge.
                match reply {
                    Reply::Value(v) => self.set(key, KeyState::Present(v.clone())),
                    Reply::NotFound => self.set(key, KeyState::Absent),
                    _ => {}
                }
                match expected {
                    Some(e) => expect(reply, &e),
                    None if matches!(reply, Reply::Value(_) | Reply::NotFound) => Check::Unverified,
                    None => Check::Mismatch {
                        expected: "OK <value> or NOT_FOUND".into(),
                    },
                }
            }
            Op::Del { key } => {
                let expected = match self.get(key) {
                    KeyState::Absent => Some(Reply::NotFound),
                    KeyState::Present(_) => Some(Reply::Ok),
                    KeyState::Unknown => None,
                };
                let check = match expected {
                    Some(e) => expect(reply, &e),
                    None if matches!(reply, Reply::Ok | Reply::NotFound) => Check::Unverified,
                    None => Check::Mismatch {
                        expected: "OK or NOT_FOUND".into(),
                    },
                };
                let after = match reply {
                    Reply::Ok | Reply::NotFound => KeyState::Absent,
                    _ => KeyState::Unknown,
                };
                self.set(key, after);
                check
            }
        }
    }
}

fn expect(got: &Reply, want: &Reply) -> Check {
    if got == want {
        Check::Verified
    } else {
        mismatch(want)
    }
}

fn mismatch(want: &Reply) -> Check {
    Check::Mismatch {
        expected: wire_text(want),
    }
}

/// A reply as the service writes it, without the id.
pub fn wire_text(r: &Reply) -> String {
    match r {
        Reply::Ok => "OK".into(),
        Reply::Value(v) => format!("OK {v}"),
        Reply::NotFound => "NOT_FOUND".into(),
        Reply::Err(reason) => format!("ERR {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.into(),
            value: v.into(),
        }
    }
    fn get(k: &str) -> Op {
        Op::Get { key: k.into() }
    }
    fn del(k: &str) -> Op {
        Op::Del { key: k.into() }
    }

    #[test]
    fn replies_are_checked_against_applied_requests() {
        let mut m = Model::empty();
        assert_eq!(m.apply(&get("a"), Some(&Reply::NotFound)), Check::Verified);
        assert_eq!(m.apply(&put("a", "1"), Some(&Reply::Ok)), Check::Verified);
        assert_eq!(
            m.apply(&get("a"), Some(&Reply::Value("1".into()))),
            Check::Verified
        );
        assert_eq!(
            m.apply(&get("a"), Some(&Reply::Value("2".into()))),
            Check::Mismatch {
                expected: "OK 1".into()
            }
        );
        assert_eq!(m.apply(&del("a"), Some(&Reply::Ok)), Check::Verified);
        assert_eq!(
            m.apply(&del("a"), Some(&Reply::Ok)),
            Check::Mismatch {
                expected: "NOT_FOUND".into()
            }
        );
    }

    #[test]
    fn a_lost_request_makes_its_key_unknown_until_a_reply_tells() {
        let mut m = Model::empty();
        assert_eq!(m.apply(&put("a", "1"), None), Check::Unverified);
        assert_eq!(m.get("a"), &KeyState::Unknown);
        assert_eq!(
            m.apply(&get("a"), Some(&Reply::NotFound)),
            Check::Unverified
        );
        assert_eq!(m.apply(&get("a"), Some(&Reply::NotFound)), Check::Verified);
        assert_eq!(m.apply(&get("b"), None), Check::Unverified);
        assert_eq!(m.get("b"), &KeyState::Absent);
    }

    #[test]
    fn state_round_trips() {
        let mut m = Model::empty();
        m.apply(&put("a", "1"), Some(&Reply::Ok));
        m.apply(&put("b", "2"), None);
        m.apply(&put("c", "3"), Some(&Reply::Ok));
        m.apply(&del("c"), Some(&Reply::Ok));
        let s = m.state();
        assert_eq!(s.present.len(), 1);
        assert!(s.unknown.contains("b") && s.absent.is_empty() && !s.others_unknown);
        let back = Model::from_state(&s);
        assert_eq!(back.get("a"), &KeyState::Present("1".into()));
        assert_eq!(back.get("b"), &KeyState::Unknown);
        assert_eq!(back.get("c"), &KeyState::Absent);
        let u = Model::unknown();
        assert_eq!(u.get("z"), &KeyState::Unknown);
        assert!(u.state().others_unknown);
    }
}
