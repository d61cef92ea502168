//! The save/restore contract.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a saved state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{component}: {problem}")]
pub struct PersistError {
    /// What was being restored (e.g. `virtio-blk[root]`).
    pub component: String,
    /// What is wrong with the state (a field out of range, a size mismatch, ...).
    pub problem: String,
}

impl PersistError {
    /// An error for `component`.
    pub fn new(component: impl Into<String>, problem: impl Into<String>) -> Self {
        PersistError { component: component.into(), problem: problem.into() }
    }
}

/// A component whose state can be saved into a snapshot and restored from it.
///
/// `save` captures everything needed to continue exactly where the component was (the VMM
/// calls it with the VM paused and the component quiesced). `restore` rebuilds a component
/// from a saved state plus what cannot be saved (host resources: backends, memory, interrupt
/// lines); it must validate every field, because a state file is untrusted input.
pub trait Persist: Sized {
    /// The saved form.
    type State: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug;
    /// Host resources the restored component needs.
    type Args;
    /// Captures the state.
    fn save(&self) -> Self::State;
    /// Rebuilds from `state`.
    fn restore(args: Self::Args, state: &Self::State) -> Result<Self, PersistError>;
}
