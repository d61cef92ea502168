//! Checks for [`Persist`] implementors' tests (cargo feature `test-utils`).
//!
//! ```ignore
//! #[test]
//! fn serial_state_round_trips() {
//!     let serial = busy_serial();
//!     snapshot::testing::check_round_trip(&serial, || SerialArgs { irq: test_irq() });
//! }
//! ```

use std::fmt::Debug;

use crate::persist::Persist;
use crate::state::{StateFile, StateWriter};

fn encode<S: serde::Serialize>(state: &S, what: &str) -> Vec<u8> {
    match postcard::to_stdvec(state) {
        Ok(b) => b,
        Err(e) => panic!("{what}: the state does not encode: {e}"),
    }
}

/// Saves `original`, encodes the state with postcard (as the state file does, through a
/// [`StateWriter`] and [`StateFile`] section), decodes it, restores a component from it with
/// `args()`, saves that again, and checks that the states are equal and their encodings
/// byte-identical. Returns the restored component for further checks. Panics with the
/// differing states otherwise.
pub fn check_round_trip<P: Persist>(original: &P, args: impl FnOnce() -> P::Args) -> P {
    let saved = original.save();
    let bytes = encode(&saved, "original");
    let mut w = StateWriter::new();
    if let Err(e) = w.put_raw("component", bytes.clone()) {
        panic!("the state does not fit in a state file: {e}");
    }
    let file = match StateFile::from_bytes(w.to_bytes(), "round-trip") {
        Ok(f) => f,
        Err(e) => panic!("the state file does not read back: {e}"),
    };
    let decoded: P::State = match file.get("component") {
        Ok(s) => s,
        Err(e) => panic!("the encoded state does not decode: {e}"),
    };
    assert_eq!(
        decoded, saved,
        "the state changed through encoding and decoding"
    );
    let restored = match P::restore(args(), &decoded) {
        Ok(r) => r,
        Err(e) => panic!("restoring from a freshly saved state failed: {e}"),
    };
    let again = restored.save();
    assert_eq!(
        again, saved,
        "the restored component saves a different state"
    );
    assert_eq!(
        encode(&again, "restored"),
        bytes,
        "the restored component's state encodes differently"
    );
    restored
}

/// Checks that restoring from `state` (typically a saved state with one field made
/// invalid) fails with an error whose text contains `needle`.
pub fn expect_restore_error<P: Persist + Debug>(args: P::Args, state: &P::State, needle: &str) {
    match P::restore(args, state) {
        Ok(p) => {
            panic!("restoring from {state:?} succeeded ({p:?}); expected an error about {needle:?}")
        }
        Err(e) => assert!(
            e.to_string().contains(needle),
            "error {e:?} does not mention {needle:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::PersistError;
    use serde::{Deserialize, Serialize};

    #[derive(Debug)]
    struct Counter {
        value: u32,
        limit: u32,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct CounterState {
        value: u32,
    }

    impl Persist for Counter {
        type State = CounterState;
        type Args = u32;
        fn save(&self) -> CounterState {
            CounterState { value: self.value }
        }
        fn restore(limit: u32, state: &CounterState) -> Result<Self, PersistError> {
            if state.value > limit {
                return Err(PersistError::new(
                    "counter",
                    format!("value {} over the limit {limit}", state.value),
                ));
            }
            Ok(Counter {
                value: state.value,
                limit,
            })
        }
    }

    #[test]
    fn round_trip_and_rejection() {
        let c = check_round_trip(
            &Counter {
                value: 7,
                limit: 10,
            },
            || 10,
        );
        assert_eq!((c.value, c.limit), (7, 10));
        expect_restore_error::<Counter>(10, &CounterState { value: 11 }, "over the limit");
    }

    #[test]
    #[should_panic(expected = "restoring from a freshly saved state failed")]
    fn a_component_that_cannot_restore_its_own_state_fails() {
        check_round_trip(
            &Counter {
                value: 7,
                limit: 10,
            },
            || 5,
        );
    }
}
