//! Baseline: the floor of a copying shared-memory stream. A bare
//! single-producer single-consumer ring in shared memory, with no library
//! around it: the parent copies each message into a slot and bumps `head`,
//! the child spins until `head` moves, copies the message out, checks its
//! stamp and bumps `tail`. Both sides cache the other's counter and re-read
//! it only when they would otherwise wait (the classic SPSC optimisation),
//! so per message it costs the two copies plus the cache-line transfers of
//! the slot and of the counters — the least any copy-in/copy-out design
//! (shmbus's `send`/`recv` path) can cost on this machine.
//!
//! It uses as many slots of the same size as the shmbus throughput case, so
//! the ring's memory footprint (and so its cache behaviour) matches.

use std::hint::spin_loop;
use std::sync::atomic::Ordering;

use crate::clock::now_ns;
use crate::control::Control;
use crate::region::SharedRegion;
use crate::role::Role;
use crate::shmbus_cases::throughput::capacity_for;
use crate::stamp::{read_stamp, stamp};
use crate::stats::Sample;
use crate::supervisor::{Ctx, Session};

/// Streams `warmup + measured` messages of `size` bytes to the child through
/// a bare ring; messages per second at the receiver.
pub fn run(ctx: &Ctx, size: usize, warmup: u64, measured: u64) -> Result<Sample, String> {
    let total = warmup + measured;
    let slots = capacity_for(size);
    let data = SharedRegion::create(slots as usize * size)?;
    let role = Role::RingSink {
        data: data.name().to_string(),
        size,
        slots,
        total,
        warmup,
    };
    let session = Session::start(ctx, "shm ring", vec![role])?;
    let control = session.control();
    let mut msg = vec![0x5Au8; size];
    let mut tail_seen = 0u64;
    for i in 0..total {
        // Ring full as far as we know: re-read the consumer's counter.
        while i - tail_seen >= slots {
            // SYNC POINT: Acquire pairs with the child's Release of `pong`
            // (its tail): its copy out of the slot happened before.
            tail_seen = control.pong.0.load(Ordering::Acquire);
            if i - tail_seen >= slots {
                spin_loop();
            }
        }
        stamp(&mut msg, i);
        // SAFETY: slot `i % slots` lies inside the mapping (slots × size
        // bytes); the consumer is done with it (tail > i - slots) and will
        // not read it before `head` passes `i`.
        unsafe {
            let dst = data.as_ptr().add((i % slots) as usize * size);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), dst, size);
        }
        // SYNC POINT: Release publishes the slot's bytes; pairs with the
        // child's Acquire load of `ping` (the head).
        control.ping.0.store(i + 1, Ordering::Release);
    }
    session.wait_results(1);
    let rate = control.result(0).rate()?;
    session.finish()?;
    Ok(Sample::Throughput { msgs_per_sec: rate })
}

/// Child side: copy out and check every message, time from message `warmup`
/// to the last.
pub fn sink_child(
    control: &Control,
    index: usize,
    data: &str,
    size: usize,
    slots: u64,
    total: u64,
    warmup: u64,
) -> Result<(), String> {
    let region = SharedRegion::open(data)?;
    if region.len() < slots as usize * size {
        return Err(format!(
            "ring region {data} is smaller than {slots} slots of {size} bytes"
        ));
    }
    let mut buf = vec![0u8; size];
    let result = control.result(index);
    control.mark_ready();
    let mut head_seen = 0u64;
    let mut first_ns = 0;
    for i in 0..total {
        while head_seen <= i {
            head_seen = control.ping.0.load(Ordering::Acquire);
            if head_seen <= i {
                spin_loop();
            }
        }
        // SAFETY: slot `i % slots` is inside the mapping and complete: the
        // Acquire load of the head above saw `head > i`.
        unsafe {
            let src = region.as_ptr().add((i % slots) as usize * size);
            std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), size);
        }
        control.pong.0.store(i + 1, Ordering::Release);
        if read_stamp(&buf) != Some(i) {
            return Err(format!(
                "ring message {i} arrived wrong: stamp {:?}",
                read_stamp(&buf)
            ));
        }
        if i == warmup {
            first_ns = now_ns();
        }
    }
    let last = now_ns();
    result.finish(first_ns, last, total - warmup - 1);
    Ok(())
}
