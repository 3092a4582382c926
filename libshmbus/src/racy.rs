//! Copying bytes that another process may be writing at the same time.
//!
//! In Rust's memory model a non-atomic read that races a write is undefined
//! behaviour, even when the bytes read are thrown away afterwards: the
//! compiler may assume memory behind a `&[u8]`, or read by
//! `ptr::copy_nonoverlapping`, does not change, and, for instance, load a
//! byte again after it checked it. Shared memory that another process may be
//! writing (a `drop-oldest` slot being overwritten by a later lap, a request
//! or reply a hostile peer rewrites) is therefore only ever read here, with
//! Relaxed atomic loads, into private memory; the private copy is what the
//! rest of the library validates and hands out.
//!
//! The copy is not a snapshot: each word is read once and atomically, but a
//! concurrent writer may change the bytes between two words, so the copy may
//! mix old and new contents. Callers that need a consistent copy check for
//! that afterwards (the seqlock re-check of a ring slot's stamp); the rest
//! only need the bytes not to change once copied (requests and replies,
//! whose writer broke the protocol if it rewrote them).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Bytes in one word of the body of a copy.
const WORD: usize = std::mem::size_of::<u64>();

/// Copies `dst.len()` bytes from `src` into `dst`, each byte read exactly
/// once by a Relaxed atomic load: `AtomicU8` loads up to the first 8-byte
/// aligned address of `src`, `AtomicU64` loads for the aligned body, and
/// `AtomicU8` loads for the tail. Any alignment of `src` and of `dst` works;
/// payload areas in the segments are 64-byte aligned, so in practice the
/// whole copy but a short tail is made of word loads.
///
/// Nothing is promised about the contents if the bytes change during the
/// copy, except that every byte of `dst` holds a value that byte of `src`
/// had at some point during it (see the module doc); the call itself is
/// always defined behaviour, however the source is written meanwhile.
///
/// # Safety
///
/// * `src .. src + dst.len()` must be valid for reads for the whole call:
///   inside one live mapping or allocation, which may be mapped read-only
///   (Relaxed loads of at most a register's width are allowed on read-only
///   memory: see "Atomic accesses to read-only memory" in the docs of
///   `core::sync::atomic`).
/// * Within this process, nothing may write those bytes non-atomically
///   during the call, and `dst` must not overlap them (it cannot while
///   `src` is shared memory and `dst` private). Writers in other processes
///   are what this function is for: they may write the bytes in any way.
pub(crate) unsafe fn atomic_read_bytes(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    // Bytes before the first 8-aligned address of `src` (all of them if the
    // copy ends first). `align_offset` of a byte pointer always succeeds at
    // run time; `min` also covers the documented `usize::MAX` answer (then
    // every byte is copied by the byte loop, which is still correct).
    let head = src.align_offset(WORD).min(len);
    let (head_dst, rest) = dst.split_at_mut(head);
    for (i, d) in head_dst.iter_mut().enumerate() {
        // SAFETY: `src + i` with `i < head ≤ len` is in the readable range
        // (caller's contract); `AtomicU8` has alignment 1 and the size of
        // `u8`, so any byte address is a valid `AtomicU8` to load from.
        *d = unsafe { &*src.add(i).cast::<AtomicU8>() }.load(Ordering::Relaxed);
    }
    let mut body = rest.chunks_exact_mut(WORD);
    for (k, d) in (&mut body).enumerate() {
        // SAFETY: the word `src + head + k·8 .. + 8` lies inside the
        // readable range (`chunks_exact_mut` yields only whole words of
        // `dst[head..]`, whose length is the range's); it is 8-byte aligned
        // because `src + head` is (that is what `head` is, when `head <
        // len`; when `head == len` there is no body), which is the size and
        // alignment of `AtomicU64`; a Relaxed load of a word the caller's
        // contract keeps free of non-atomic writes in this process is
        // defined whatever other processes do.
        let w = unsafe { &*src.add(head + k * WORD).cast::<AtomicU64>() }.load(Ordering::Relaxed);
        d.copy_from_slice(&w.to_ne_bytes());
    }
    let tail_dst = body.into_remainder();
    let tail = len - tail_dst.len();
    for (i, d) in tail_dst.iter_mut().enumerate() {
        // SAFETY: `src + tail + i < src + len`, in the readable range; any
        // byte address is a valid `AtomicU8` (as for the head).
        *d = unsafe { &*src.add(tail + i).cast::<AtomicU8>() }.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source buffer whose start is 8-byte aligned, so that offsets into
    /// it give every misalignment.
    fn source(n: usize) -> Vec<u64> {
        let words = n.div_ceil(WORD) + 2;
        (0..words as u64)
            .map(|w| {
                let mut b = [0u8; WORD];
                for (i, x) in b.iter_mut().enumerate() {
                    // Every byte distinct from its neighbours (mod 251).
                    *x = ((w as usize * WORD + i) % 251) as u8;
                }
                u64::from_ne_bytes(b)
            })
            .collect()
    }

    #[test]
    fn copies_every_length_at_every_misalignment_exactly() {
        let src = source(200 + 2 * WORD);
        let base = src.as_ptr().cast::<u8>();
        // SAFETY: `base` points to `src`, which holds at least 200 + 16
        // initialised bytes and is not written while borrowed here.
        let all = unsafe { std::slice::from_raw_parts(base, 200 + 2 * WORD) };
        for misalign in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13] {
            for len in 0..=200 {
                // The destination misaligned too, differently from the
                // source, and with guard bytes around it.
                let mut dst = vec![0xEEu8; len + 7];
                let d_off = (misalign * 3 + 1) % 7;
                // SAFETY: `base + misalign .. + len` ≤ 13 + 200 bytes lies
                // inside `src`; nothing writes `src` meanwhile; `dst` is a
                // distinct allocation.
                unsafe { atomic_read_bytes(base.add(misalign), &mut dst[d_off..d_off + len]) };
                assert_eq!(
                    &dst[d_off..d_off + len],
                    &all[misalign..misalign + len],
                    "len {len} misalignment {misalign}"
                );
                assert!(
                    dst[..d_off].iter().all(|&b| b == 0xEE)
                        && dst[d_off + len..].iter().all(|&b| b == 0xEE),
                    "wrote outside dst: len {len} misalignment {misalign}"
                );
            }
        }
    }

    #[test]
    fn reads_a_buffer_written_concurrently_with_atomics() {
        // A writer thread stores whole words atomically; every word the
        // reader copies must be one the writer stored (all bytes equal),
        // never a mix inside a word. (Between words, mixes are allowed.)
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let words: Arc<Vec<AtomicU64>> = Arc::new((0..32).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (words, stop) = (Arc::clone(&words), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut v = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    v = v.wrapping_add(1);
                    for w in words.iter() {
                        w.store(u64::from_ne_bytes([v; WORD]), Ordering::Relaxed);
                    }
                }
            })
        };
        let mut dst = [0u8; 32 * WORD];
        for _ in 0..2000 {
            // SAFETY: the 256 bytes of `words` live as long as the `Arc`;
            // the only writes to them are atomic (the writer thread).
            unsafe { atomic_read_bytes(words.as_ptr().cast::<u8>(), &mut dst) };
            for w in dst.chunks_exact(WORD) {
                assert!(w.iter().all(|&b| b == w[0]), "torn word {w:?}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }
}
