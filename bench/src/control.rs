//! The control block at the start of every case's [`SharedRegion`]: how the
//! parent and its children agree that setup is done and hand back results,
//! plus the words the raw spin and futex baselines bounce between them.
//!
//! ```text
//! offset   field                          written by
//! 0        ready: AtomicU32               each child, once set up (fetch_add)
//! 128      ping:  AtomicU64               parent (both spin floors)
//! 256      pong:  AtomicU64               child  (both spin floors)
//! 384      ping_futex: AtomicU32          parent (futex floor)
//! 512      pong_futex: AtomicU32          child  (futex floor)
//! 640      ping_payload: [AtomicU64; 8]   parent (64 B spin floor)
//! 768      pong_payload: [AtomicU64; 8]   child  (64 B spin floor)
//! 896      results[MAX_CHILDREN]          child i writes results[i] only
//! ```
//!
//! Every field sits on its own 128-byte block: a line written by one side
//! never shares a cache line (or the adjacent-line prefetch pair) with a line
//! written by the other, nor with another field of the same side, so the
//! 1-line spin floor measures one cache-line transfer each way and the 64 B
//! spin floor exactly two (counter line + payload line) and nothing else.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::region::SharedRegion;

/// Most children one case may start (the 16-subscriber fan-out).
pub const MAX_CHILDREN: usize = 16;

/// 8-byte words in a 64 B spin floor payload.
pub const PAYLOAD_WORDS: usize = 8;

/// A value alone on a 128-byte block.
#[repr(C, align(128))]
pub struct Padded<T>(pub T);

/// What a receiving child reports back. All zero until it writes them.
#[repr(C)]
pub struct ChildResult {
    /// Messages received so far (only updated per message where the case
    /// needs live progress: fan-out bursts).
    pub progress: AtomicU64,
    /// CLOCK_MONOTONIC ns when the first measured message arrived.
    pub first_ns: AtomicU64,
    /// CLOCK_MONOTONIC ns when the last message arrived.
    pub last_ns: AtomicU64,
    /// Messages counted between `first_ns` and `last_ns`.
    pub measured: AtomicU64,
    /// 1 once the fields above are final (Release; read with Acquire).
    pub done: AtomicU32,
}

/// The block itself; see the module doc for the layout.
#[repr(C)]
pub struct Control {
    /// Children that finished their setup.
    pub ready: Padded<AtomicU32>,
    /// Spin floor: the parent's ping counter.
    pub ping: Padded<AtomicU64>,
    /// Spin floor: the child's pong counter.
    pub pong: Padded<AtomicU64>,
    /// Futex floor: the parent's ping word.
    pub ping_futex: Padded<AtomicU32>,
    /// Futex floor: the child's pong word.
    pub pong_futex: Padded<AtomicU32>,
    /// 64 B spin floor: the parent's 64-byte payload (one cache line),
    /// written before `ping`.
    pub ping_payload: Padded<[AtomicU64; PAYLOAD_WORDS]>,
    /// 64 B spin floor: the child's copy of the payload, written before
    /// `pong`.
    pub pong_payload: Padded<[AtomicU64; PAYLOAD_WORDS]>,
    /// One result block per child.
    pub results: [Padded<ChildResult>; MAX_CHILDREN],
}

impl Control {
    /// Bytes a region needs to hold the block.
    pub const SIZE: usize = std::mem::size_of::<Control>();

    /// The control block at the start of `region`.
    pub fn of(region: &SharedRegion) -> &Control {
        assert!(
            region.len() >= Self::SIZE,
            "shared region too small for the control block"
        );
        // SAFETY: the mapping is page aligned (more than Control's 128-byte
        // alignment), at least SIZE bytes long (checked above), zero-filled by
        // ftruncate and only ever accessed through atomics, for which all-zero
        // bytes are a valid value. The reference borrows `region`, so it
        // cannot outlive the mapping.
        unsafe { &*(region.as_ptr() as *const Control) }
    }

    /// Child side: announce that setup is done.
    pub fn mark_ready(&self) {
        // SYNC POINT: pairs with the Acquire load in `ready_count`, so the
        // parent sees everything the child set up (subscriptions) before it
        // starts sending.
        self.ready.0.fetch_add(1, Ordering::Release);
    }

    /// Parent side: how many children are set up.
    pub fn ready_count(&self) -> u32 {
        self.ready.0.load(Ordering::Acquire)
    }

    /// The result block of child `index`.
    pub fn result(&self, index: usize) -> &ChildResult {
        &self.results[index].0
    }
}

impl ChildResult {
    /// Child side: publish the final figures.
    pub fn finish(&self, first_ns: u64, last_ns: u64, measured: u64) {
        self.first_ns.store(first_ns, Ordering::Relaxed);
        self.last_ns.store(last_ns, Ordering::Relaxed);
        self.measured.store(measured, Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire in `is_done`.
        self.done.store(1, Ordering::Release);
    }

    /// Parent side: whether `finish` ran.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire) == 1
    }

    /// Parent side: messages per second between the child's first and last
    /// measured message, or an error when it measured nothing.
    pub fn rate(&self) -> Result<f64, String> {
        let first = self.first_ns.load(Ordering::Relaxed);
        let last = self.last_ns.load(Ordering::Relaxed);
        let n = self.measured.load(Ordering::Relaxed);
        if last <= first || n == 0 {
            return Err("the receiving process measured no interval; use more messages".into());
        }
        Ok(n as f64 * 1e9 / (last - first) as f64)
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    #[test]
    fn every_field_is_on_its_own_128_byte_block_as_documented() {
        assert_eq!(offset_of!(Control, ready), 0);
        assert_eq!(offset_of!(Control, ping), 128);
        assert_eq!(offset_of!(Control, pong), 256);
        assert_eq!(offset_of!(Control, ping_futex), 384);
        assert_eq!(offset_of!(Control, pong_futex), 512);
        assert_eq!(offset_of!(Control, ping_payload), 640);
        assert_eq!(offset_of!(Control, pong_payload), 768);
        assert_eq!(offset_of!(Control, results), 896);
        assert_eq!(
            std::mem::size_of::<Padded<[AtomicU64; PAYLOAD_WORDS]>>(),
            128
        );
        assert_eq!(std::mem::size_of::<Padded<ChildResult>>(), 128);
    }
}
