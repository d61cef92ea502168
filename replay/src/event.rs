//! The event model: everything that crosses the guest boundary, stamped with when (in VM
//! time) and where (guest progress) it happened.
//!
//! *Inputs* are what replay re-delivers to a clone, so each carries all of it: the frame, the
//! bytes typed on the console, a block request's completion status and (in full block mode)
//! the data a read returned. *Outputs* are what replay compares the clone's behaviour with:
//! transmitted frames, console output, and block writes (position, length and the hash of the
//! data, plus the data itself in full block mode). *Markers* are written by the recorder
//! itself and go to every capture buffer.
//!
//! How a VMM tap maps virtio-blk requests onto events: when the device submits a write it
//! records a [`EventKind::BlkWrite`] (the output); when any request completes it records a
//! [`EventKind::BlkCompletion`] (the input the guest sees: the status, and for reads the
//! data or its hash).

use std::fmt;

use crate::hash::Hash128;

/// A small number naming the device an event came from or went to. Each capture segment
/// carries the table mapping ids to names (`net0`, `blk0`, `serial`, see
/// [`crate::source::SourceTable`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct SourceId(pub u16);

impl SourceId {
    /// The source of the markers the recorder writes itself.
    pub const RECORDER: SourceId = SourceId(u16::MAX);
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == SourceId::RECORDER {
            f.write_str("recorder")
        } else {
            write!(f, "source#{}", self.0)
        }
    }
}

/// One recorded event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    /// Position in its capture buffer: 0 for the first event a buffer directory ever held,
    /// then +1 for each record, markers included, with no holes (events dropped under the
    /// `Drop` policy consume no number; the `Gap` marker that accounts for them does).
    pub seq: u64,
    /// Nanoseconds the VM had run when the event happened (paused time excluded), from the
    /// VMM's clock. Never smaller than the previous event's within a recording session.
    pub vm_time_ns: u64,
    /// The guest-progress marker at delivery (e.g. the vCPU exit count), from the VMM.
    pub progress: u64,
    /// The device.
    pub source: SourceId,
    /// What happened.
    pub kind: EventKind,
}

/// The type of a virtio-blk request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BlkRequestType {
    /// `VIRTIO_BLK_T_IN`.
    Read,
    /// `VIRTIO_BLK_T_OUT`.
    Write,
    /// `VIRTIO_BLK_T_FLUSH`.
    Flush,
    /// `VIRTIO_BLK_T_GET_ID`.
    GetId,
    /// `VIRTIO_BLK_T_DISCARD`.
    Discard,
    /// `VIRTIO_BLK_T_WRITE_ZEROES`.
    WriteZeroes,
    /// Any other type (completed with `VIRTIO_BLK_S_UNSUPP`).
    Unsupported,
}

impl BlkRequestType {
    /// Every type, in code order.
    pub const ALL: [BlkRequestType; 7] = [
        BlkRequestType::Read,
        BlkRequestType::Write,
        BlkRequestType::Flush,
        BlkRequestType::GetId,
        BlkRequestType::Discard,
        BlkRequestType::WriteZeroes,
        BlkRequestType::Unsupported,
    ];

    /// The code stored on disk.
    pub fn code(self) -> u8 {
        match self {
            BlkRequestType::Read => 0,
            BlkRequestType::Write => 1,
            BlkRequestType::Flush => 2,
            BlkRequestType::GetId => 3,
            BlkRequestType::Discard => 4,
            BlkRequestType::WriteZeroes => 5,
            BlkRequestType::Unsupported => 6,
        }
    }

    /// The type with stored code `c`.
    pub fn from_code(c: u8) -> Option<BlkRequestType> {
        BlkRequestType::ALL.get(usize::from(c)).copied()
    }

    /// A short lowercase name (`read`, `write-zeroes`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BlkRequestType::Read => "read",
            BlkRequestType::Write => "write",
            BlkRequestType::Flush => "flush",
            BlkRequestType::GetId => "get-id",
            BlkRequestType::Discard => "discard",
            BlkRequestType::WriteZeroes => "write-zeroes",
            BlkRequestType::Unsupported => "unsupported",
        }
    }
}

/// The data a completed block request returned to the guest.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BlkData {
    /// Nothing returned (writes, flushes, failed requests...).
    None,
    /// The bytes, as the guest received them (full block mode).
    Full(Vec<u8>),
    /// Only their [`Hash128`] (compact block mode: a replay reads the data from the clone's
    /// copy of the volume and checks it against the hash).
    Hash(Hash128),
}

impl BlkData {
    /// The hash of the data (computed for `Full`), `None` when no data was returned.
    pub fn hash(&self) -> Option<Hash128> {
        match self {
            BlkData::None => None,
            BlkData::Full(b) => Some(Hash128::of(b)),
            BlkData::Hash(h) => Some(*h),
        }
    }
}

/// Why events are missing from a capture.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GapReason {
    /// The buffer's writer fell behind and its policy is `Drop`.
    Overflow,
    /// The writer could not write them to disk.
    WriteFailed,
    /// One event would have encoded larger than [`crate::limits::MAX_RECORD_BYTES`].
    TooLarge,
}

impl GapReason {
    /// The code stored on disk.
    pub fn code(self) -> u8 {
        match self {
            GapReason::Overflow => 1,
            GapReason::WriteFailed => 2,
            GapReason::TooLarge => 3,
        }
    }

    /// The reason with stored code `c`.
    pub fn from_code(c: u8) -> Option<GapReason> {
        match c {
            1 => Some(GapReason::Overflow),
            2 => Some(GapReason::WriteFailed),
            3 => Some(GapReason::TooLarge),
            _ => None,
        }
    }

    /// A short name (`overflow`, `write-failed`, `too-large`).
    pub fn name(self) -> &'static str {
        match self {
            GapReason::Overflow => "overflow",
            GapReason::WriteFailed => "write-failed",
            GapReason::TooLarge => "too-large",
        }
    }
}

/// What an event is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EventKind {
    /// Input: an Ethernet frame delivered to the guest's NIC (no virtio-net header).
    NetRx {
        /// The frame.
        frame: Vec<u8>,
    },
    /// Input: a block request completed and its status (and data) went to the guest.
    BlkCompletion {
        /// The request type.
        request: BlkRequestType,
        /// The first sector (512 bytes) the request addressed (0 where it has none).
        sector: u64,
        /// Bytes the request covered (data length for reads and writes).
        len: u32,
        /// The virtio status byte (`VIRTIO_BLK_S_OK` = 0, `IOERR` = 1, `UNSUPP` = 2).
        status: u8,
        /// What the guest received.
        data: BlkData,
    },
    /// Input: bytes typed on the console.
    SerialIn {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Output: an Ethernet frame the guest transmitted (no virtio-net header).
    NetTx {
        /// The frame.
        frame: Vec<u8>,
    },
    /// Output: the guest wrote data to a disk.
    BlkWrite {
        /// The first sector.
        sector: u64,
        /// Bytes written.
        len: u32,
        /// [`Hash128`] of the data.
        hash: Hash128,
        /// The data itself (full block mode only).
        data: Option<Vec<u8>>,
    },
    /// Output: bytes the guest wrote to the console.
    SerialOut {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Marker: a VM snapshot was taken at this instant; the segment this marker starts and
    /// those after it replay from that snapshot.
    SnapshotTaken {
        /// The snapshot's id.
        id: String,
    },
    /// Marker: a recording session started (the first record of its first segment).
    RecordingStarted,
    /// Marker: the recording was stopped cleanly.
    RecordingStopped,
    /// Marker: a replay injected an event that was not recorded (seeded entropy), or
    /// changed or withheld a recorded one; the description says what.
    Injected {
        /// What was injected, e.g. `net#12 drop` or `blk io-error sector 2048`.
        what: String,
    },
    /// Marker: events are missing here.
    Gap {
        /// How many events were lost.
        lost_events: u64,
        /// Their payload bytes.
        lost_bytes: u64,
        /// Why.
        reason: GapReason,
    },
}

/// The broad class of an event, as filters select them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum KindClass {
    /// `NetRx`, `NetTx`.
    Net,
    /// `BlkCompletion`, `BlkWrite`.
    Blk,
    /// `SerialIn`, `SerialOut`.
    Serial,
    /// Markers.
    Marker,
}

impl KindClass {
    /// A short lowercase name (`net`, `blk`, `serial`, `marker`).
    pub fn name(self) -> &'static str {
        match self {
            KindClass::Net => "net",
            KindClass::Blk => "blk",
            KindClass::Serial => "serial",
            KindClass::Marker => "marker",
        }
    }
}

/// Whether an event entered the guest, left it, or is a marker.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    /// Into the guest: replay re-delivers it.
    Input,
    /// Out of the guest: replay compares it.
    Output,
    /// Written by the recorder.
    Marker,
}

impl EventKind {
    /// A frame delivered to the guest.
    pub fn net_rx(frame: Vec<u8>) -> EventKind {
        EventKind::NetRx { frame }
    }

    /// A frame the guest sent.
    pub fn net_tx(frame: Vec<u8>) -> EventKind {
        EventKind::NetTx { frame }
    }

    /// A guest write of `data` at `sector`, hashing it (the data is kept only by buffers in
    /// full block mode).
    pub fn blk_write(sector: u64, data: Vec<u8>) -> EventKind {
        EventKind::BlkWrite {
            sector,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            hash: Hash128::of(&data),
            data: Some(data),
        }
    }

    /// The class of the event.
    pub fn class(&self) -> KindClass {
        match self {
            EventKind::NetRx { .. } | EventKind::NetTx { .. } => KindClass::Net,
            EventKind::BlkCompletion { .. } | EventKind::BlkWrite { .. } => KindClass::Blk,
            EventKind::SerialIn { .. } | EventKind::SerialOut { .. } => KindClass::Serial,
            EventKind::SnapshotTaken { .. }
            | EventKind::RecordingStarted
            | EventKind::RecordingStopped
            | EventKind::Injected { .. }
            | EventKind::Gap { .. } => KindClass::Marker,
        }
    }

    /// Whether the event is an input, an output or a marker.
    pub fn direction(&self) -> Direction {
        match self {
            EventKind::NetRx { .. }
            | EventKind::BlkCompletion { .. }
            | EventKind::SerialIn { .. } => Direction::Input,
            EventKind::NetTx { .. } | EventKind::BlkWrite { .. } | EventKind::SerialOut { .. } => {
                Direction::Output
            }
            _ => Direction::Marker,
        }
    }

    /// The variant's name (`NetRx`, `BlkCompletion`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::NetRx { .. } => "NetRx",
            EventKind::BlkCompletion { .. } => "BlkCompletion",
            EventKind::SerialIn { .. } => "SerialIn",
            EventKind::NetTx { .. } => "NetTx",
            EventKind::BlkWrite { .. } => "BlkWrite",
            EventKind::SerialOut { .. } => "SerialOut",
            EventKind::SnapshotTaken { .. } => "SnapshotTaken",
            EventKind::RecordingStarted => "RecordingStarted",
            EventKind::RecordingStopped => "RecordingStopped",
            EventKind::Injected { .. } => "Injected",
            EventKind::Gap { .. } => "Gap",
        }
    }

    /// The frame of a network event.
    pub fn frame(&self) -> Option<&[u8]> {
        match self {
            EventKind::NetRx { frame } | EventKind::NetTx { frame } => Some(frame),
            _ => None,
        }
    }

    /// Bytes of payload the event carries (frames, console bytes, block data kept).
    pub fn payload_len(&self) -> usize {
        match self {
            EventKind::NetRx { frame } | EventKind::NetTx { frame } => frame.len(),
            EventKind::SerialIn { bytes } | EventKind::SerialOut { bytes } => bytes.len(),
            EventKind::BlkCompletion {
                data: BlkData::Full(d),
                ..
            } => d.len(),
            EventKind::BlkWrite { data: Some(d), .. } => d.len(),
            EventKind::SnapshotTaken { id } => id.len(),
            EventKind::Injected { what } => what.len(),
            _ => 0,
        }
    }

    /// Whether the compact block mode stores this event differently (it carries block data).
    pub fn has_block_data(&self) -> bool {
        matches!(
            self,
            EventKind::BlkCompletion {
                data: BlkData::Full(_),
                ..
            } | EventKind::BlkWrite { data: Some(_), .. }
        )
    }

    /// The event as compact block mode stores it: read data replaced by its hash, write
    /// data dropped (its hash is kept). Other events are unchanged.
    pub fn to_compact(&self) -> EventKind {
        match self {
            EventKind::BlkCompletion {
                request,
                sector,
                len,
                status,
                data: BlkData::Full(d),
            } => EventKind::BlkCompletion {
                request: *request,
                sector: *sector,
                len: *len,
                status: *status,
                data: BlkData::Hash(Hash128::of(d)),
            },
            EventKind::BlkWrite {
                sector, len, hash, ..
            } => EventKind::BlkWrite {
                sector: *sector,
                len: *len,
                hash: *hash,
                data: None,
            },
            other => other.clone(),
        }
    }
}
