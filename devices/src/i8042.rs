//! Intel 8042 controller on ports 0x60/0x64: only the CPU reset command matters here.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vm_superio::I8042Device;

use crate::bus::BusDevice;
use crate::interrupt::InterruptLine;
use crate::persist::{Persist, PersistError};
use crate::serial::LineTrigger;

/// First port of the controller (data port; the command port is at +4).
pub const I8042_PORT: u64 = 0x60;
/// Ports spanned: 0x60..=0x64.
pub const I8042_PORT_COUNT: u64 = 5;

/// The controller; a guest write of 0xFE to port 0x64 signals `reset`.
pub struct I8042 {
    inner: I8042Device<LineTrigger>,
}

impl I8042 {
    /// A controller that pulses `reset` when the guest asks for a CPU reset.
    pub fn new(reset: Arc<dyn InterruptLine>) -> Self {
        I8042 {
            inner: I8042Device::new(LineTrigger(reset)),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Status port: report an empty output buffer and input buffer so guests never wait.
        let value = match u8::try_from(offset) {
            Ok(off) => self.inner.read(off),
            Err(_) => 0xff,
        };
        data.fill(value);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), [value]) = (u8::try_from(offset), data) {
            if let Err(e) = self.inner.write(off, *value) {
                log::error!("i8042: could not signal the reset request: {e}");
            }
        }
    }
}

/// The saved controller: empty. The model has no registers (every read answers 0) and a
/// reset request is an edge on the reset line, not state; the state exists so that the
/// controller goes through the same save/restore path as every other device, and so that
/// a later model with registers can add fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct I8042State {}

impl Persist for I8042 {
    type State = I8042State;
    /// The line pulsed when the guest asks for a CPU reset.
    type Args = Arc<dyn InterruptLine>;

    fn save(&self) -> I8042State {
        I8042State {}
    }

    fn restore(reset: Arc<dyn InterruptLine>, _state: &I8042State) -> Result<Self, PersistError> {
        Ok(I8042::new(reset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EventFd;

    #[test]
    fn reset_command_signals() {
        let evt = Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let mut dev = I8042::new(evt.clone());
        dev.write(0, &[0xfe]);
        assert!(evt.read().is_err(), "data port write must not reset");
        dev.write(4, &[0xfe]);
        assert_eq!(evt.read().unwrap(), 1);
    }
}
