//! Saving and restoring a block device. The queue is saved by the transport.

use log::info;
use serde::{Deserialize, Serialize};

use super::{Block, BlockMetrics};
use crate::backends::BlockBackend;
use crate::persist::{bad_field, Persist, PersistError};

/// The saved block device.
///
/// Not saved: the backend (given back in [`BlockArgs`]: a point-in-time copy of the disk),
/// the request queue (saved with the transport and handed back by
/// [`crate::virtio::VirtioDevice::resume`]), and the I/O-limit timer. A device held by an
/// I/O limit at save time had put the waiting request back on the available ring, so after
/// restore it simply asks the backend's limits again when the queue is processed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockState {
    /// Whether the disk was read-only (the offered features depend on it).
    pub read_only: bool,
    /// Capacity the guest sees, in 512-byte sectors.
    pub capacity_sectors: u64,
    /// Features the driver accepted.
    pub acked_features: u64,
    /// ConfigGeneration (bumped by online resizes).
    pub config_generation: u32,
    /// Counters.
    pub metrics: BlockMetrics,
}

/// What a restored block device needs from the host.
pub struct BlockArgs {
    /// The disk, as it was at the snapshot.
    pub backend: Box<dyn BlockBackend>,
}

impl Persist for Block {
    type State = BlockState;
    type Args = BlockArgs;

    fn save(&self) -> BlockState {
        BlockState {
            read_only: self.disk.read_only,
            capacity_sectors: self.disk.capacity_sectors,
            acked_features: self.acked_features,
            config_generation: self.config_generation,
            metrics: self.disk.metrics,
        }
    }

    /// Rebuilds the device, not yet activated: restoring its transport resumes it.
    fn restore(args: BlockArgs, state: &BlockState) -> Result<Self, PersistError> {
        let mut block =
            Block::new(args.backend).map_err(|e| PersistError::new("virtio-blk", e.to_string()))?;
        let label = block.disk.label.clone();
        let bad = |field: &str, problem: String| bad_field(label.as_str(), field, problem);
        if state.read_only != block.disk.read_only {
            return Err(bad(
                "read_only",
                format!(
                    "the disk was {} but the backend given is {}",
                    writability(state.read_only),
                    writability(block.disk.read_only)
                ),
            ));
        }
        if state.capacity_sectors > block.disk.capacity_sectors {
            return Err(bad(
                "capacity_sectors",
                format!(
                    "{} sectors, but the backend given holds only {}",
                    state.capacity_sectors, block.disk.capacity_sectors
                ),
            ));
        }
        let unknown = state.acked_features & !block.avail_features;
        if unknown != 0 {
            return Err(bad(
                "acked_features",
                format!("features {unknown:#x} are not offered by this device"),
            ));
        }
        if state.capacity_sectors < block.disk.capacity_sectors {
            info!(
                "{label}: the backend holds {} sectors; the guest keeps seeing the {} it had",
                block.disk.capacity_sectors, state.capacity_sectors
            );
        }
        block.disk.capacity_sectors = state.capacity_sectors;
        block.acked_features = state.acked_features;
        block.config_generation = state.config_generation;
        block.disk.metrics = state.metrics;
        Ok(block)
    }
}

fn writability(read_only: bool) -> &'static str {
    if read_only {
        "read-only"
    } else {
        "writable"
    }
}
