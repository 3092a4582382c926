//! Baseline: the hardware floor. Two processes bounce a counter through
//! shared memory, one cache line each way, both sides busy-spinning; nothing
//! can hand a message to another core faster than this.
//!
//! A second floor ([`run_64`]) hands over a 64-byte payload the same way: a
//! 64 B message plus any header cannot fit in one cache line, so a bus that
//! carries one needs at least two line transfers per hop — the line that
//! says "published" (counter, stamp) and the payload line — and the reader
//! cannot fetch the payload before it has seen the counter. That floor moves
//! exactly those two lines each way: the payload on its own 128-byte block,
//! then the counter on another.
//!
//! The loops poll with plain loads and no pause hint: a pause can only
//! delay seeing the other side's store, and a floor must be the fastest
//! hand-over the hardware does, not the speed of one spinning style. (The
//! first version paused on every poll; its runs measured 230–260 ns
//! one-way on the development VM, this one's 40–240 ns: there, where the
//! hypervisor places the two vCPUs — same core complex or not — moves the
//! floor by up to 6× between runs, see docs/performance.md "Noise".)

use std::sync::atomic::Ordering;

use crate::clock::now_ns;
use crate::control::{Control, PAYLOAD_WORDS};
use crate::role::Role;
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Runs the ping-pong: `warmup` unmeasured round trips, then `iters`.
pub fn run(ctx: &Ctx, warmup: u64, iters: u64) -> Result<Sample, String> {
    let total = warmup + iters;
    let session = Session::start(ctx, "spin floor", vec![Role::SpinPong { total }])?;
    let control = session.control();
    let mut rec = RttRecorder::new();
    for i in 1..=total {
        let t0 = now_ns();
        // SYNC POINT: Release pairs with the child's Acquire in `child`.
        control.ping.0.store(i, Ordering::Release);
        // SYNC POINT: Acquire pairs with the child's Release of `pong`.
        while control.pong.0.load(Ordering::Acquire) != i {}
        let t1 = now_ns();
        if i > warmup {
            rec.record(t1 - t0);
        }
    }
    session.finish()?;
    Ok(Sample::Latency(rec.one_way()))
}

/// Child side: answer each ping with the same counter.
pub fn child(control: &Control, total: u64) -> Result<(), String> {
    control.mark_ready();
    for i in 1..=total {
        while control.ping.0.load(Ordering::Acquire) != i {}
        control.pong.0.store(i, Ordering::Release);
    }
    Ok(())
}

/// Word `k` of round `round`'s payload: every word carries the round number
/// (and its own index), so a reader that sees the counter but a stale or
/// torn payload notices.
fn payload_word(round: u64, k: usize) -> u64 {
    (round << 8) | k as u64
}

/// Whether `words` is round `round`'s payload.
fn is_payload(words: &[u64; PAYLOAD_WORDS], round: u64) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(k, &w)| w == payload_word(round, k))
}

/// Runs the 64 B ping-pong: `warmup` unmeasured round trips, then `iters`.
/// Per hop the sender writes the 64-byte payload (8 Relaxed stores to its
/// payload line), then Release-stores its counter (a second line); the
/// receiver spins on the counter, then loads the payload. The parent's load
/// of the child's payload is inside the timed interval, so both hops move
/// two lines; checking the payload is not.
pub fn run_64(ctx: &Ctx, warmup: u64, iters: u64) -> Result<Sample, String> {
    let total = warmup + iters;
    let session = Session::start(ctx, "64 B spin floor", vec![Role::SpinPong64 { total }])?;
    let control = session.control();
    let mut rec = RttRecorder::new();
    let mut reply = [0u64; PAYLOAD_WORDS];
    for i in 1..=total {
        let t0 = now_ns();
        for (k, w) in control.ping_payload.0.iter().enumerate() {
            // Relaxed: published by the Release store of `ping` below.
            w.store(payload_word(i, k), Ordering::Relaxed);
        }
        // SYNC POINT: Release pairs with the child's Acquire of `ping` in
        // `child_64`: the payload stores above are visible to it once it
        // sees `i`.
        control.ping.0.store(i, Ordering::Release);
        // SYNC POINT: Acquire pairs with the child's Release of `pong` in
        // `child_64`, so its payload stores for round `i` are visible below.
        while control.pong.0.load(Ordering::Acquire) != i {}
        for (r, w) in reply.iter_mut().zip(&control.pong_payload.0) {
            // Relaxed: ordered after the Acquire of `pong` above.
            *r = w.load(Ordering::Relaxed);
        }
        let t1 = now_ns();
        if !is_payload(&reply, i) {
            return Err(format!(
                "round {i}: the child's payload came back wrong: {reply:x?}"
            ));
        }
        if i > warmup {
            rec.record(t1 - t0);
        }
    }
    session.finish()?;
    Ok(Sample::Latency(rec.one_way()))
}

/// Child side of [`run_64`]: on each ping, read the parent's payload, check
/// it carries the round number, copy it into the own payload line and
/// answer with the same counter.
pub fn child_64(control: &Control, total: u64) -> Result<(), String> {
    control.mark_ready();
    let mut words = [0u64; PAYLOAD_WORDS];
    for i in 1..=total {
        // SYNC POINT: Acquire pairs with the parent's Release of `ping` in
        // `run_64`, so its payload stores for round `i` are visible below.
        while control.ping.0.load(Ordering::Acquire) != i {}
        for (r, w) in words.iter_mut().zip(&control.ping_payload.0) {
            // Relaxed: ordered after the Acquire of `ping` above.
            *r = w.load(Ordering::Relaxed);
        }
        if !is_payload(&words, i) {
            return Err(format!(
                "round {i}: the parent's payload arrived wrong: {words:x?}"
            ));
        }
        for (w, &v) in control.pong_payload.0.iter().zip(&words) {
            // Relaxed: published by the Release store of `pong` below.
            w.store(v, Ordering::Relaxed);
        }
        // SYNC POINT: Release pairs with the parent's Acquire of `pong` in
        // `run_64`: the payload stores above are visible to it once it sees
        // `i`.
        control.pong.0.store(i, Ordering::Release);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_the_round() {
        let mut w = [0u64; PAYLOAD_WORDS];
        for (k, v) in w.iter_mut().enumerate() {
            *v = payload_word(7, k);
        }
        assert!(is_payload(&w, 7));
        assert!(!is_payload(&w, 6));
        w[5] = payload_word(6, 5);
        assert!(!is_payload(&w, 7));
    }
}
