//! Record framing: `u32 len | u32 crc32(len ‖ payload) | payload`.

/// Bytes before a record's payload.
pub const RECORD_HEAD_BYTES: usize = 8;

/// Appends one framed record holding `payload` to `out`.
pub fn frame_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// The CRC a record with this payload carries.
pub fn record_crc(payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// The length and CRC stored in a record head.
pub fn parse_head(head: &[u8; RECORD_HEAD_BYTES]) -> (u32, u32) {
    (
        u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
    )
}
