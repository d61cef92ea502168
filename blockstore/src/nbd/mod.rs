//! An NBD server (newstyle, fixed handshake).
