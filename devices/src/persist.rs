//! Saving and restoring device models: the [`Persist`] contract from the `snapshot` crate,
//! implemented by every device here, and what they share.
//!
//! Each device's state is a plain serde struct holding only what the guest can observe or
//! what is needed to continue exactly where the device stopped. Host resources (backends,
//! interrupt lines, guest memory, eventfds) are not state: they come back through the
//! restore arguments. Every field of a state is validated on restore, because a state file
//! is untrusted input; a bad field is reported as a [`PersistError`] naming the device and
//! the field.

pub use snapshot::{Persist, PersistError};

/// A [`PersistError`] for `component` saying that its saved `field` is unusable.
pub(crate) fn bad_field(
    component: impl Into<String>,
    field: &str,
    problem: impl std::fmt::Display,
) -> PersistError {
    PersistError::new(component, format!("saved field `{field}`: {problem}"))
}
