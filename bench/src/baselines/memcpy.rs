//! Baseline: single-thread `memcpy` bandwidth for one buffer size (1 MiB in
//! the report): the ceiling for a path that copies every message once. The
//! two buffers stay the same across iterations, so they are as cache-warm as
//! a 1 MiB copy can be: the most demanding reference for the copy path.

use std::hint::black_box;

use crate::clock::now_ns;
use crate::stats::Sample;

/// Copies `size` bytes `warmup + iters` times; bytes per second of the last
/// `iters`.
pub fn run(size: usize, warmup: u64, iters: u64) -> Result<Sample, String> {
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut dst = vec![0u8; size];
    let mut t0 = now_ns();
    for i in 0..warmup + iters {
        if i == warmup {
            t0 = now_ns();
        }
        // `black_box` keeps the optimiser from proving the copies redundant.
        black_box(&mut dst).copy_from_slice(black_box(&src));
    }
    let elapsed = now_ns() - t0;
    if elapsed == 0 || iters == 0 {
        return Err("memcpy loop too short to time; use more iterations".into());
    }
    Ok(Sample::Bandwidth {
        bytes_per_sec: (size as u64 * iters) as f64 * 1e9 / elapsed as f64,
    })
}
