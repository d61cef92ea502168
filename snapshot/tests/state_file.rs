//! The VM-state file: round trips, and every kind of damage reported with the file and the
//! section it hit.

mod common;

use common::TempDir;
use serde::{Deserialize, Serialize};
use snapshot::limits::{MAX_SECTIONS, MAX_STATE_FILE_BYTES};
use snapshot::{SnapshotError, StateFile, StateWriter};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Vcpu {
    rip: u64,
    regs: [u64; 16],
    xsave: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Devices {
    names: Vec<String>,
    serial_fifo: Vec<u8>,
    irq: Option<u32>,
}

fn vcpu(i: u64) -> Vcpu {
    Vcpu {
        rip: 0x1000 + i,
        regs: [i; 16],
        xsave: (0..4096).map(|b| (b as u64 * i) as u8).collect(),
    }
}

fn devices() -> Devices {
    Devices {
        names: vec!["serial".into(), "virtio-blk[root]".into()],
        serial_fifo: b"hello".to_vec(),
        irq: Some(5),
    }
}

fn sample() -> StateWriter {
    let mut w = StateWriter::new();
    w.put("vcpu0", &vcpu(0)).unwrap();
    w.put("vcpu1", &vcpu(1)).unwrap();
    w.put("vm", &(0xabcdu64, "clock".to_string())).unwrap();
    w.put("devices", &devices()).unwrap();
    w
}

/// Section name → (payload start, payload end) offsets in the encoded file, found by
/// walking the format independently of the reader.
fn section_spans(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let count = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut at = 24;
    let mut out = Vec::new();
    for _ in 0..count {
        let nl = u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
        let name = String::from_utf8(bytes[at + 2..at + 2 + nl].to_vec()).unwrap();
        let pl = u64::from_le_bytes(bytes[at + 2 + nl..at + 10 + nl].try_into().unwrap()) as usize;
        let start = at + 14 + nl;
        out.push((name, at, start + pl));
        at = start + pl;
    }
    out
}

#[test]
fn round_trip_through_a_file() {
    let dir = TempDir::new("state-rt");
    let path = dir.join("state.bin");
    let w = sample();
    w.write_to(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), w.len());
    let f = StateFile::read(&path).unwrap();
    assert_eq!(
        f.names().collect::<Vec<_>>(),
        ["vcpu0", "vcpu1", "vm", "devices"]
    );
    assert_eq!(f.get::<Vcpu>("vcpu0").unwrap(), vcpu(0));
    assert_eq!(f.get::<Vcpu>("vcpu1").unwrap(), vcpu(1));
    assert_eq!(
        f.get::<(u64, String)>("vm").unwrap(),
        (0xabcd, "clock".to_string())
    );
    assert_eq!(f.get::<Devices>("devices").unwrap(), devices());
    assert!(f.contains("vm") && !f.contains("vcpu2"));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn empty_file_round_trips() {
    let w = StateWriter::new();
    let f = StateFile::from_bytes(w.to_bytes(), "empty").unwrap();
    assert_eq!(f.names().count(), 0);
}

#[test]
fn missing_section_and_wrong_type_name_the_section() {
    let f = StateFile::from_bytes(sample().to_bytes(), "/snap/state.bin").unwrap();
    let e = f.get::<Vcpu>("vcpu7").unwrap_err();
    assert!(matches!(e, SnapshotError::MissingSection { ref section, .. } if section == "vcpu7"));
    assert!(e.to_string().contains("/snap/state.bin"), "{e}");
    let e = f.get::<Vcpu>("devices").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SnapshotError::BadSection { .. }), "{msg}");
    assert!(
        msg.contains("/snap/state.bin") && msg.contains("\"devices\""),
        "{msg}"
    );
    // A value that decodes but leaves bytes over is refused too.
    let e = f.get::<u64>("vm").unwrap_err();
    assert!(e.to_string().contains("left over"), "{e}");
}

#[test]
fn a_flipped_byte_in_each_section_names_that_section() {
    let bytes = sample().to_bytes();
    for (idx, (name, start, end)) in section_spans(&bytes).into_iter().enumerate() {
        for at in [start, start + 3, (start + end) / 2, end - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let e = StateFile::from_bytes(bad, "state.bin").unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("section {idx}")),
                "offset {at}: {msg}"
            );
            if at >= start + 14 + name.len() {
                // Inside the payload: a checksum mismatch of exactly that section.
                assert!(
                    matches!(e, SnapshotError::Checksum { ref what, .. } if what.contains(&format!("{name:?}"))),
                    "offset {at}: {msg}"
                );
            }
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_is_an_error() {
    let bytes = sample().to_bytes();
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        assert!(
            StateFile::from_bytes(bad, "state.bin").is_err(),
            "flip at {at} went unnoticed"
        );
    }
}

#[test]
fn truncation_at_any_offset_is_an_error() {
    let bytes = sample().to_bytes();
    for len in 0..bytes.len() {
        let e = StateFile::from_bytes(bytes[..len].to_vec(), "state.bin").unwrap_err();
        if len >= 24 {
            assert!(
                matches!(e, SnapshotError::Truncated { offset, .. } if offset == len as u64),
                "cut at {len}: {e}"
            );
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(StateFile::from_bytes(longer, "state.bin").is_err());
}

#[test]
fn truncated_file_on_disk_reports_offset() {
    let dir = TempDir::new("state-trunc");
    let path = dir.join("state.bin");
    sample().write_to(&path).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    let e = StateFile::read(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("truncated at offset {}", len / 2)),
        "{msg}"
    );
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    // The damaged file is left as it was.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len / 2);
}

#[test]
fn wrong_magic_and_version() {
    let mut bytes = sample().to_bytes();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let e = StateFile::from_bytes(bytes.clone(), "state.bin").unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("unsupported state file version 2"),
        "{e}"
    );
    bytes[0] = b'X';
    let e = StateFile::from_bytes(bytes, "state.bin").unwrap_err();
    assert!(matches!(e, SnapshotError::BadMagic { .. }), "{e}");
    let e = StateFile::from_bytes(b"{\"json\": true}".to_vec(), "state.bin").unwrap_err();
    assert!(matches!(e, SnapshotError::BadMagic { .. }), "{e}");
}

/// Rewrites a section's length field, and the checksums after it, as a forger would.
fn forge_length(bytes: &[u8], section: usize, new_len: u64) -> Vec<u8> {
    let spans = section_spans(bytes);
    let (ref name, start, _) = spans[section];
    let mut b = bytes.to_vec();
    let at = start + 2 + name.len();
    b[at..at + 8].copy_from_slice(&new_len.to_le_bytes());
    b
}

#[test]
fn oversized_lengths_are_refused_without_allocating() {
    let bytes = sample().to_bytes();
    for huge in [u64::MAX, 1 << 40, MAX_STATE_FILE_BYTES, bytes.len() as u64] {
        let e = StateFile::from_bytes(forge_length(&bytes, 1, huge), "state.bin").unwrap_err();
        assert!(e.to_string().contains("runs past the end"), "{e}");
    }
    // A header announcing too many sections.
    let mut b = bytes.clone();
    b[12..16].copy_from_slice(&(MAX_SECTIONS as u32 + 1).to_le_bytes());
    assert!(StateFile::from_bytes(b, "state.bin")
        .unwrap_err()
        .to_string()
        .contains("over the limit"));
    // A header announcing a giant file.
    let mut b = bytes.clone();
    b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        StateFile::from_bytes(b, "state.bin").unwrap_err(),
        SnapshotError::Truncated { .. }
    ));
    // A postcard length prefix claiming a huge vector inside a valid section.
    let mut w = StateWriter::new();
    w.put_raw("vcpu0", vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x0f])
        .unwrap();
    let f = StateFile::from_bytes(w.to_bytes(), "state.bin").unwrap();
    assert!(f.get::<Vcpu>("vcpu0").is_err());
}

#[test]
fn oversized_file_on_disk_is_refused_before_reading() {
    let dir = TempDir::new("state-big");
    let path = dir.join("state.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(MAX_STATE_FILE_BYTES + 1).unwrap();
    let e = StateFile::read(&path).unwrap_err();
    assert!(matches!(e, SnapshotError::TooLarge { .. }), "{e}");
}

#[test]
fn writer_refuses_bad_names_duplicates_and_size() {
    let mut w = StateWriter::new();
    assert!(w.put("", &1u8).is_err());
    assert!(w.put(&"x".repeat(65), &1u8).is_err());
    w.put(&"x".repeat(64), &1u8).unwrap();
    w.put("a", &1u8).unwrap();
    assert!(w.put("a", &2u8).unwrap_err().to_string().contains("twice"));
    let big = vec![0u8; (MAX_STATE_FILE_BYTES / 2) as usize];
    w.put_raw("big1", big.clone()).unwrap();
    assert!(w.put_raw("big2", big).is_err());
    let mut w = StateWriter::new();
    for i in 0..MAX_SECTIONS {
        w.put(&format!("s{i}"), &()).unwrap();
    }
    assert!(w.put("one-more", &()).is_err());
    let f = StateFile::from_bytes(w.to_bytes(), "state.bin").unwrap();
    assert_eq!(f.names().count(), MAX_SECTIONS);
}
