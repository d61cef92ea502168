//! The store's content saved after a run (`--state-out`) and read back for the next.

use std::path::Path;

use super::model::State;
use super::KvgenError;

/// Read a state file written with [`write_state`].
pub fn read_state(path: &Path) -> Result<State, KvgenError> {
    let text = std::fs::read_to_string(path).map_err(|e| KvgenError::File {
        path: path.to_path_buf(),
        detail: format!("cannot read the state: {e}"),
    })?;
    serde_json::from_str(&text).map_err(|e| KvgenError::File {
        path: path.to_path_buf(),
        detail: format!("not a kvgen state file: {e}"),
    })
}

/// Write the model's content for a later run's [`Initial::State`](super::Initial::State).
pub fn write_state(path: &Path, state: &State) -> Result<(), KvgenError> {
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(|e| KvgenError::File {
        path: path.to_path_buf(),
        detail: format!("cannot write the state: {e}"),
    })
}
