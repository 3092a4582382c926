//! The index every benchmark message carries in its first 8 bytes, so that
//! the receiver can check it got every message, in order. Used by the
//! shmbus cases and by the baselines that carry messages; it uses no other
//! module of the crate.

/// Writes the message index into the first 8 bytes (the receiver checks it:
/// a benchmark that loses or reorders messages measures nothing).
#[inline]
pub fn stamp(buf: &mut [u8], index: u64) {
    buf[..8].copy_from_slice(&index.to_le_bytes());
}

/// Reads back what [`stamp`] wrote; `None` if the message is too short.
#[inline]
pub fn read_stamp(buf: &[u8]) -> Option<u64> {
    buf.get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}
