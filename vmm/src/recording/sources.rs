//! Source ids of a VM's devices in recordings: the console is 0, then the drives and the
//! network interfaces in configuration order. A clone restored from a snapshot has the same
//! configuration, hence the same ids.

use replay::{SourceId, SourceInfo, SourceTable};

use crate::config::VmConfig;

/// The id of drive `drive_id`.
pub fn drive(config: &VmConfig, drive_id: &str) -> Option<SourceId> {
    config
        .drives
        .iter()
        .position(|d| d.drive_id == drive_id)
        .map(|i| SourceId(1 + i as u16))
}

/// The id of network interface `iface_id`.
pub fn net(config: &VmConfig, iface_id: &str) -> Option<SourceId> {
    config
        .nets
        .iter()
        .position(|n| n.iface_id == iface_id)
        .map(|i| SourceId((1 + config.drives.len() + i) as u16))
}

/// The table naming every device of `config`.
pub fn table(config: &VmConfig) -> Result<SourceTable, String> {
    let mut sources = vec![SourceInfo::serial(0, "serial")];
    for (i, d) in config.drives.iter().enumerate() {
        sources.push(SourceInfo::blk(1 + i as u16, &d.drive_id));
    }
    for n in &config.nets {
        let id = net(config, &n.iface_id).map_or(0, |s| s.0);
        let mac = match &n.guest_mac {
            Some(m) => Some(crate::config::parse_mac(m).map_err(|e| e.0)?),
            None => None,
        };
        sources.push(SourceInfo::net(id, &n.iface_id, mac));
    }
    SourceTable::new(sources).map_err(|e| e.to_string())
}
