//! One client connection from greeting to goodbye.

use std::io::{self, Read, Write};
use std::sync::atomic::AtomicBool;

use super::error::ConnError;
use super::exports::ExportTable;
use super::handshake::{negotiate, Outcome};
use super::transmission::transmit;

/// Runs the handshake and then the transmission phase over `r` / `w`.
/// `entering_transmission` runs between the two (the server clears the handshake's read
/// timeout there: a client may sit idle for as long as it likes once it has an export).
pub(crate) fn serve<R: Read, W: Write>(
    r: &mut R,
    w: &mut W,
    exports: &ExportTable,
    stopping: &AtomicBool,
    entering_transmission: impl FnOnce() -> io::Result<()>,
) -> Result<(), ConnError> {
    match negotiate(r, w, exports, stopping)? {
        Outcome::Aborted => Ok(()),
        Outcome::Transmission(neg) => {
            log::debug!("NBD: client chose export {:?}", neg.name);
            entering_transmission()?;
            transmit(r, w, &neg)
        }
    }
}
