//! The reply slot protocol: one state word per slot says which call the
//! slot belongs to, who holds it, and how far the reply has come.
//!
//! ```text
//!   state = corr << 16 | (taker + 1) << 4 | st     (corr: low 48 bits)
//!
//!   FREE ──client: store──► PENDING(corr)          request queued
//!   PENDING(corr) ──server s: CAS──► TAKEN(corr, s)      s is answering
//!   TAKEN(corr, s) ──s: CAS──► WRITING(corr, s)   s copies the reply in
//!   WRITING(corr, s) ──s: CAS──► REPLIED(corr, s) the client may read it
//!   PENDING / TAKEN / WRITING of a dead server ──reclaimer: CAS──► GONE
//!   PENDING / TAKEN ──client gives up: CAS──► FREE
//!   REPLIED / GONE ──client, after reading: store──► FREE
//! ```
//!
//! Only the owning client allocates a slot (moves it out of `FREE`), and it
//! picks a correlation id never used before on its entry (`next_corr` is
//! kept across owners). Every other transition is a CAS on the exact
//! previous word, so a server holding a stale ticket — for a call its
//! client gave up, or of a client that died and whose entry was taken over
//! — fails its CAS and drops the reply instead of writing into a slot that
//! now serves another call. Only the holder of `WRITING` touches the
//! payload, and nobody takes a slot out of `WRITING` except its writer (or
//! the reclaimer once that writer is dead), so a payload is never written by
//! two servers at once nor read while being written: the client reads it
//! only after an Acquire load sees `REPLIED`, which the writer stored with
//! Release after the bytes.

use crate::service::layout::ReplyHeader;
use crate::sync::Ordering;

/// Slot states, the low four bits of the word.
pub(crate) mod st {
    pub const FREE: u64 = 0;
    pub const PENDING: u64 = 1;
    pub const TAKEN: u64 = 2;
    pub const WRITING: u64 = 3;
    pub const REPLIED: u64 = 4;
    pub const GONE: u64 = 5;
}

/// Correlation ids are compared on their low 48 bits.
pub(crate) const CORR_MASK: u64 = (1 << 48) - 1;

/// Packs a state word.
#[inline]
pub(crate) const fn pack(corr: u64, taker: Option<u32>, state: u64) -> u64 {
    let t = match taker {
        Some(s) => (s as u64 & 0x7ff) + 1,
        None => 0,
    };
    ((corr & CORR_MASK) << 16) | (t << 4) | state
}

/// The fields of a state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    pub corr: u64,
    pub taker: Option<u32>,
    pub state: u64,
}

/// Unpacks a state word.
#[inline]
pub(crate) const fn unpack(w: u64) -> Word {
    let t = (w >> 4) & 0xfff;
    Word {
        corr: w >> 16,
        taker: if t == 0 { None } else { Some((t - 1) as u32) },
        state: w & 0xf,
    }
}

fn cas(slot: &ReplyHeader, from: u64, to: u64) -> bool {
    slot.state
        .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// The client starts a call in a slot it owns (`FREE`).
pub(crate) fn begin_call(slot: &ReplyHeader, corr: u64) {
    // Release: ordered before the request's publication anyway (the queue's
    // Release CAS), which is how servers come to look at this slot.
    slot.state
        .store(pack(corr, None, st::PENDING), Ordering::Release);
}

/// A server that took the call's request claims the answer. `false`: the
/// client no longer waits for this call (gave up, died, or the ticket is
/// stale or forged).
pub(crate) fn take(slot: &ReplyHeader, corr: u64, server: u32) -> bool {
    cas(
        slot,
        pack(corr, None, st::PENDING),
        pack(corr, Some(server), st::TAKEN),
    )
}

/// The server that took the call starts writing the reply.
pub(crate) fn begin_reply(slot: &ReplyHeader, corr: u64, server: u32) -> bool {
    cas(
        slot,
        pack(corr, Some(server), st::TAKEN),
        pack(corr, Some(server), st::WRITING),
    )
}

/// The writer hands the reply (length, status and bytes written) over.
pub(crate) fn finish_reply(slot: &ReplyHeader, corr: u64, server: u32) -> bool {
    // SYNC POINT (reply): Release (in SeqCst) pairs with the client's
    // Acquire load in `poll`: payload, length and status happen-before.
    // SeqCst (the same locked CAS on x86): the caller then wakes the client
    // with `notify_all_after_seqcst_rmw`, whose argument needs this CAS in
    // the SeqCst total order (see there).
    slot.state
        .compare_exchange(
            pack(corr, Some(server), st::WRITING),
            pack(corr, Some(server), st::REPLIED),
            Ordering::SeqCst,
            Ordering::Acquire,
        )
        .is_ok()
}

/// The reclaimer of dead server `server` fails the call if that server held
/// it (or, with `server = None`, if it was still pending: taken out of the
/// queue by the dead server but not yet claimed here). `true` if it did.
pub(crate) fn mark_gone(slot: &ReplyHeader, corr: u64, server: Option<u32>) -> bool {
    let gone = pack(corr, server, st::GONE);
    match server {
        None => cas(slot, pack(corr, None, st::PENDING), gone),
        Some(_) => {
            cas(slot, pack(corr, server, st::TAKEN), gone)
                || cas(slot, pack(corr, server, st::WRITING), gone)
        }
    }
}

/// What the client sees in its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Queued, or being answered by `taker`.
    Waiting { taker: Option<u32>, writing: bool },
    /// The reply is complete.
    Replied,
    /// The server holding the call died.
    Gone,
    /// The word belongs to no call of this id: corrupt, or reset by a
    /// reclaimer that took this client for dead.
    Lost,
}

/// The client looks at its slot for call `corr`.
pub(crate) fn poll(slot: &ReplyHeader, corr: u64) -> Seen {
    // SYNC POINT (reply): Acquire pairs with `finish_reply`.
    let w = unpack(slot.state.load(Ordering::Acquire));
    if w.corr != corr & CORR_MASK {
        return Seen::Lost;
    }
    match w.state {
        st::PENDING if w.taker.is_none() => Seen::Waiting {
            taker: None,
            writing: false,
        },
        st::TAKEN | st::WRITING if w.taker.is_some() => Seen::Waiting {
            taker: w.taker,
            writing: w.state == st::WRITING,
        },
        st::REPLIED => Seen::Replied,
        st::GONE => Seen::Gone,
        _ => Seen::Lost,
    }
}

/// Result of the client giving up a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// The slot is free again.
    Freed,
    /// A server is writing the reply right now: the slot is free only once
    /// it is done (or reclaimed); the client keeps it aside until then.
    Busy,
}

/// The client gives up call `corr` (timeout, cancel, detach).
pub(crate) fn cancel(slot: &ReplyHeader, corr: u64) -> Cancel {
    // Bounded: each failed CAS means a server moved the word forward, and
    // there are at most three such moves before a final state.
    for _ in 0..8 {
        let now = slot.state.load(Ordering::Acquire);
        let w = unpack(now);
        if w.corr != corr & CORR_MASK {
            // Not this call's any more: nothing to give up.
            return Cancel::Freed;
        }
        match w.state {
            st::WRITING => return Cancel::Busy,
            st::FREE => return Cancel::Freed,
            _ => {
                if cas(slot, now, 0) {
                    return Cancel::Freed;
                }
            }
        }
    }
    Cancel::Busy
}

/// The client frees a slot whose call is over (after reading the reply).
pub(crate) fn release(slot: &ReplyHeader) {
    // Release: our reads of the payload happen-before the next writer's
    // writes (which follow its CAS on this word, via our next `begin_call`).
    slot.state.store(0, Ordering::Release);
}

/// Whether a slot is free or in a final state (for a new owner sorting out
/// a dead predecessor's slots).
pub(crate) fn is_settled(slot: &ReplyHeader) -> bool {
    let w = unpack(slot.state.load(Ordering::Acquire));
    !matches!(w.state, st::WRITING)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for (corr, taker, state) in [
            (0, None, st::FREE),
            (CORR_MASK, Some(1023), st::REPLIED),
            (12345, Some(0), st::TAKEN),
        ] {
            let w = unpack(pack(corr, taker, state));
            assert_eq!(w, Word { corr, taker, state });
        }
        assert_eq!(unpack(pack(CORR_MASK + 5, None, st::PENDING)).corr, 4);
    }

    #[test]
    fn a_call_goes_through() {
        let s = ReplyHeader::zeroed();
        begin_call(&s, 9);
        assert_eq!(
            poll(&s, 9),
            Seen::Waiting {
                taker: None,
                writing: false
            }
        );
        assert!(!take(&s, 8, 1), "wrong call");
        assert!(take(&s, 9, 1));
        assert!(!take(&s, 9, 2), "taken once");
        assert!(!begin_reply(&s, 9, 2), "only by its taker");
        assert!(begin_reply(&s, 9, 1));
        assert_eq!(
            poll(&s, 9),
            Seen::Waiting {
                taker: Some(1),
                writing: true
            }
        );
        assert_eq!(cancel(&s, 9), Cancel::Busy);
        assert!(finish_reply(&s, 9, 1));
        assert_eq!(poll(&s, 9), Seen::Replied);
        release(&s);
        assert_eq!(poll(&s, 9), Seen::Lost);
    }

    #[test]
    fn a_cancelled_call_drops_the_late_reply() {
        let s = ReplyHeader::zeroed();
        begin_call(&s, 3);
        assert!(take(&s, 3, 0));
        assert_eq!(cancel(&s, 3), Cancel::Freed);
        assert!(!begin_reply(&s, 3, 0));
        begin_call(&s, 4);
        // The stale server of call 3 cannot touch call 4.
        assert!(!take(&s, 3, 0));
        assert!(!begin_reply(&s, 3, 0));
        assert_eq!(
            poll(&s, 4),
            Seen::Waiting {
                taker: None,
                writing: false
            }
        );
    }

    #[test]
    fn a_dead_server_makes_the_call_gone() {
        let s = ReplyHeader::zeroed();
        begin_call(&s, 5);
        assert!(mark_gone(&s, 5, None), "taken from the queue, not yet here");
        assert_eq!(poll(&s, 5), Seen::Gone);
        release(&s);
        begin_call(&s, 6);
        assert!(take(&s, 6, 2));
        assert!(!mark_gone(&s, 6, Some(3)), "another server's call");
        assert!(begin_reply(&s, 6, 2));
        assert!(mark_gone(&s, 6, Some(2)));
        assert!(!finish_reply(&s, 6, 2));
        assert_eq!(poll(&s, 6), Seen::Gone);
    }
}
