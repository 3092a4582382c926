//! Baseline for services: request/reply over a Unix stream socket
//! (`socketpair`), the way people call another process on one host today.
//! The client (this process) writes a 64 B request; the server (the child)
//! reads one request and writes it back as the reply — two system calls per
//! side per call.
//!
//! Same two phases as the shmbus service case (`shmbus_cases::service`):
//! sequential calls, each timed (round trip), then pipelined calls with the
//! same number in flight ([`DEPTH`]), timed as a whole for calls per second.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use crate::baselines::stream::{channel, StreamKind};
use crate::clock::now_ns;
use crate::role::Role;
use crate::shmbus_cases::service::{RpcPlan, DEPTH, SIZE};
use crate::stamp::{read_stamp, stamp};
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Runs one repetition: the child echoes every request (`Role::FdPong`),
/// this process calls.
pub fn run(ctx: &Ctx, plan: RpcPlan) -> Result<Sample, String> {
    let both = channel(StreamKind::UnixSocket, true)?;
    let fd = both.child.as_raw_fd();
    let role = Role::FdPong {
        read_fd: fd,
        write_fd: fd,
        size: SIZE,
        total: plan.total(),
    };
    let session = Session::start(ctx, "unix socket req/reply", vec![role])?;
    // The child has its copy; ours would only keep the socket open.
    drop(both.child);
    let sock = File::from(both.parent);
    let io = |e: std::io::Error| format!("unix socket request/reply failed: {e}");

    let mut req = [0xA5u8; SIZE];
    let mut reply = [0u8; SIZE];
    let mut rec = RttRecorder::new();
    let sequential = plan.warmup + plan.iters;
    for i in 0..sequential {
        stamp(&mut req, i);
        let t0 = now_ns();
        (&sock).write_all(&req).map_err(io)?;
        (&sock).read_exact(&mut reply).map_err(io)?;
        let t1 = now_ns();
        check(&reply, i)?;
        if i >= plan.warmup {
            rec.record(t1 - t0);
        }
    }
    pipeline(&sock, sequential, plan.pipe_warmup)?;
    let t0 = now_ns();
    pipeline(&sock, sequential + plan.pipe_warmup, plan.pipelined)?;
    let elapsed_ns = now_ns().saturating_sub(t0).max(1);
    session.finish()?;
    Ok(Sample::Rpc {
        round_trip: rec.round_trip(),
        calls_per_sec: plan.pipelined as f64 * 1e9 / elapsed_ns as f64,
    })
}

/// Calls `first..first + n` with up to [`DEPTH`] requests written ahead of
/// their replies; returns once every reply is read.
fn pipeline(sock: &File, first: u64, n: u64) -> Result<(), String> {
    let io = |e: std::io::Error| format!("unix socket pipelined request/reply failed: {e}");
    let mut in_flight: VecDeque<u64> = VecDeque::with_capacity(DEPTH);
    let mut req = [0x5Au8; SIZE];
    let mut reply = [0u8; SIZE];
    for i in first..first + n {
        if in_flight.len() == DEPTH {
            let want = in_flight.pop_front().expect("full");
            (&*sock).read_exact(&mut reply).map_err(io)?;
            check(&reply, want)?;
        }
        stamp(&mut req, i);
        (&*sock).write_all(&req).map_err(io)?;
        in_flight.push_back(i);
    }
    while let Some(want) = in_flight.pop_front() {
        (&*sock).read_exact(&mut reply).map_err(io)?;
        check(&reply, want)?;
    }
    Ok(())
}

fn check(reply: &[u8], i: u64) -> Result<(), String> {
    if read_stamp(reply) == Some(i) {
        Ok(())
    } else {
        Err(format!("the reply to unix socket call {i} came back wrong"))
    }
}
