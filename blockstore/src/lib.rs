//! The Reprise block store.
//!
//! A *store* is a directory holding volumes and the layers they are made of:
//!
//! ```text
//! <store>/volumes/<name>/manifest.json   one per volume: size, chunk size, layer chain, snapshots
//! <store>/layers/<id>.*                   layer files, shared by every volume whose chain uses them
//! ```
//!
//! A volume is addressed by its directory (`<store>/volumes/<name>`). [`volume`] implements
//! volumes, layers, snapshots, clones and resize; [`limits`] the token-bucket I/O limits;
//! [`nbd`] serves volumes (or anything else implementing its export trait) over NBD.

pub mod limits;
pub mod nbd;
pub mod volume;
