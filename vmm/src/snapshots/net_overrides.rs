//! What a restored VM's network interfaces are attached to, when not what was saved.
//!
//! By default a restored VM is faithful: every interface gets the backend of the saved
//! configuration. A clone that runs next to the original must not take over the original's
//! TAP device or socket, so each interface can instead be *detached* (the device stays as
//! the guest knows it, on a backend connected to nothing) or moved to a new backend, with a
//! new MAC address if wanted.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{parse_mac, VmConfig};

/// One interface's override (`--net IFACE=SPEC`, or an entry of `network_overrides` in
/// `PUT /snapshot/load`): `detach`, or a new backend (`host_dev_name`, or `socket_path`
/// with `peer_socket_path`) with an optional new `guest_mac`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetOverride {
    /// The interface, as named in the snapshot's configuration.
    pub iface_id: String,
    /// Keep the device but connect it to nothing: frames the guest sends are dropped and
    /// nothing is received.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detach: bool,
    /// A TAP device to attach to instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_dev_name: Option<String>,
    /// The path to bind for a Unix datagram backend instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
    /// The peer of that datagram backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_socket_path: Option<PathBuf>,
    /// A new MAC address (with a new backend only), written into the device's config space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_mac: Option<String>,
}

/// How `--net` is written, for errors.
pub const CLI_SYNTAX: &str =
    "IFACE=detach, IFACE=tap:NAME[,mac=MAC] or IFACE=dgram:LOCAL_PATH:PEER_PATH[,mac=MAC]";

impl NetOverride {
    /// Parses the command line's `IFACE=detach`, `IFACE=tap:NAME[,mac=MAC]` or
    /// `IFACE=dgram:LOCAL:PEER[,mac=MAC]` (LOCAL cannot contain `:`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let bad = |why: String| format!("--net {spec:?}: {why}; expected {CLI_SYNTAX}");
        let (iface, backend) = spec
            .split_once('=')
            .ok_or_else(|| bad("no `=` after the interface id".into()))?;
        let (backend, mac) = match backend.rsplit_once(",mac=") {
            Some((backend, mac)) => (backend, Some(mac.to_string())),
            None => (backend, None),
        };
        let mut o = NetOverride {
            iface_id: iface.to_string(),
            detach: false,
            host_dev_name: None,
            socket_path: None,
            peer_socket_path: None,
            guest_mac: mac,
        };
        if backend == "detach" {
            o.detach = true;
        } else if let Some(name) = backend.strip_prefix("tap:") {
            if name.contains(',') {
                return Err(bad(format!("TAP name {name:?} contains `,`")));
            }
            o.host_dev_name = Some(name.to_string());
        } else if let Some(paths) = backend.strip_prefix("dgram:") {
            let (local, peer) = paths
                .split_once(':')
                .ok_or_else(|| bad("dgram needs LOCAL_PATH:PEER_PATH".into()))?;
            if local.is_empty() || peer.is_empty() {
                return Err(bad(
                    "dgram needs a non-empty LOCAL_PATH and PEER_PATH".into()
                ));
            }
            o.socket_path = Some(PathBuf::from(local));
            o.peer_socket_path = Some(PathBuf::from(peer));
        } else {
            return Err(bad(format!("unknown backend {backend:?}")));
        }
        o.validate().map_err(bad)?;
        Ok(o)
    }

    /// Checks that exactly one of `detach` and a backend is given, and the MAC.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.iface_id;
        if id.is_empty() {
            return Err("the interface id is empty".into());
        }
        let backends = [
            self.detach,
            self.host_dev_name.is_some(),
            self.socket_path.is_some() || self.peer_socket_path.is_some(),
        ];
        match backends.iter().filter(|b| **b).count() {
            0 => {
                return Err(format!(
                    "interface `{id}`: give detach, host_dev_name, or socket_path with \
                     peer_socket_path"
                ))
            }
            1 => {}
            _ => {
                return Err(format!(
                    "interface `{id}`: give only one of detach, host_dev_name, and socket_path \
                     with peer_socket_path"
                ))
            }
        }
        if self.socket_path.is_some() != self.peer_socket_path.is_some() {
            return Err(format!(
                "interface `{id}`: the datagram backend needs both socket_path and \
                 peer_socket_path"
            ));
        }
        if let Some(tap) = &self.host_dev_name {
            if tap.is_empty() || tap.len() >= 16 {
                return Err(format!(
                    "interface `{id}`: host_dev_name {tap:?} must be 1 to 15 bytes"
                ));
            }
        }
        if let Some(mac) = &self.guest_mac {
            if self.detach {
                return Err(format!(
                    "interface `{id}`: a detached interface keeps its MAC address; give a new \
                     MAC with a new backend"
                ));
            }
            parse_mac(mac).map_err(|e| format!("interface `{id}`: {e}"))?;
        }
        Ok(())
    }
}

/// Applies `overrides` to the network interfaces of a saved configuration. Fails, naming
/// it, on an override that is invalid, names an interface the configuration does not have,
/// or repeats one.
pub fn apply(config: &mut VmConfig, overrides: &[NetOverride]) -> Result<(), String> {
    for (i, o) in overrides.iter().enumerate() {
        o.validate()?;
        if overrides[..i].iter().any(|p| p.iface_id == o.iface_id) {
            return Err(format!("interface `{}` is overridden twice", o.iface_id));
        }
        let known: Vec<String> = config.nets.iter().map(|n| n.iface_id.clone()).collect();
        let Some(net) = config.nets.iter_mut().find(|n| n.iface_id == o.iface_id) else {
            return Err(if known.is_empty() {
                format!(
                    "no network interface `{}`: the snapshot has none",
                    o.iface_id
                )
            } else {
                format!(
                    "no network interface `{}` in the snapshot; it has {}",
                    o.iface_id,
                    known.join(", ")
                )
            });
        };
        net.host_dev_name = o.host_dev_name.clone();
        net.socket_path = o.socket_path.clone();
        net.peer_socket_path = o.peer_socket_path.clone();
        net.detached = o.detach;
        if let Some(mac) = &o.guest_mac {
            net.guest_mac = Some(mac.clone());
        }
        net.validate()
            .map_err(|e| format!("interface `{}`: {e}", o.iface_id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetConfig;

    fn config() -> VmConfig {
        VmConfig {
            nets: vec![NetConfig {
                iface_id: "net0".into(),
                host_dev_name: None,
                socket_path: Some("/run/vm.sock".into()),
                peer_socket_path: Some("/run/peer.sock".into()),
                guest_mac: Some("06:00:00:00:00:01".into()),
                detached: false,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn command_line_forms() {
        let o = NetOverride::parse("net0=detach").unwrap();
        assert!(o.detach && o.host_dev_name.is_none() && o.guest_mac.is_none());
        let o = NetOverride::parse("net0=tap:tap7,mac=02:00:00:00:00:07").unwrap();
        assert_eq!(o.host_dev_name.as_deref(), Some("tap7"));
        assert_eq!(o.guest_mac.as_deref(), Some("02:00:00:00:00:07"));
        let o = NetOverride::parse("net0=dgram:/a b/x.sock:/c:d.sock").unwrap();
        assert_eq!(o.socket_path, Some(PathBuf::from("/a b/x.sock")));
        assert_eq!(o.peer_socket_path, Some(PathBuf::from("/c:d.sock")));

        let err = |spec: &str| NetOverride::parse(spec).unwrap_err();
        assert!(err("net0").contains("no `=`"));
        assert!(err("net0=bridge:br0").contains("unknown backend"));
        assert!(err("net0=dgram:/only").contains("LOCAL_PATH:PEER_PATH"));
        assert!(err("net0=dgram::/peer").contains("non-empty"));
        assert!(err("net0=tap:t,mac=zz").contains("\"zz\""));
        assert!(err("net0=tap:t,mac=01:00:00:00:00:01").contains("multicast"));
        assert!(err("net0=detach,mac=02:00:00:00:00:07").contains("keeps its MAC"));
        assert!(err("net0=tap:a,b").contains("`,`"));
        assert!(err("net0=tap:").contains("1 to 15"));
        assert!(err("=detach").contains("empty"));
    }

    #[test]
    fn overrides_change_the_saved_configuration() {
        let mut c = config();
        apply(&mut c, &[NetOverride::parse("net0=detach").unwrap()]).unwrap();
        let n = &c.nets[0];
        assert!(n.detached && n.socket_path.is_none() && n.peer_socket_path.is_none());
        assert_eq!(n.guest_mac.as_deref(), Some("06:00:00:00:00:01"));

        let mut c = config();
        let o = NetOverride::parse("net0=tap:tap1,mac=02:00:00:00:00:99").unwrap();
        apply(&mut c, &[o]).unwrap();
        let n = &c.nets[0];
        assert_eq!(n.host_dev_name.as_deref(), Some("tap1"));
        assert!(n.socket_path.is_none() && !n.detached);
        assert_eq!(n.guest_mac.as_deref(), Some("02:00:00:00:00:99"));

        let mut c = config();
        let e = apply(&mut c, &[NetOverride::parse("eth9=detach").unwrap()]).unwrap_err();
        assert!(e.contains("`eth9`") && e.contains("net0"), "{e}");
        let twice = [
            NetOverride::parse("net0=detach").unwrap(),
            NetOverride::parse("net0=tap:t").unwrap(),
        ];
        assert!(apply(&mut c, &twice).unwrap_err().contains("twice"));
        let e = apply(
            &mut VmConfig::default(),
            &[NetOverride::parse("net0=detach").unwrap()],
        )
        .unwrap_err();
        assert!(e.contains("has none"), "{e}");
        let half = NetOverride {
            iface_id: "net0".into(),
            detach: false,
            host_dev_name: None,
            socket_path: Some("/x".into()),
            peer_socket_path: None,
            guest_mac: None,
        };
        assert!(apply(&mut config(), &[half]).unwrap_err().contains("both"));
    }
}
