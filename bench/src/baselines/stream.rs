//! Baselines: message passing through the kernel over a byte stream, a pipe
//! or a Unix stream socket. Each message is one `write` of the message's
//! size, as a message-per-call API has to do; the receiver of a stream reads
//! into a large buffer (at least 64 KiB), so it takes as many messages per
//! `read` as the kernel has queued: the kernel's best case.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::clock::now_ns;
use crate::control::Control;
use crate::role::Role;
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Which kernel stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// An anonymous pipe (one per direction).
    Pipe,
    /// A `socketpair(AF_UNIX, SOCK_STREAM)`.
    UnixSocket,
}

impl StreamKind {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Pipe => "pipe",
            StreamKind::UnixSocket => "unix socket",
        }
    }
}

/// One direction of a stream: the parent's end and the child's end.
pub(crate) struct Channel {
    /// The parent's end (close-on-exec).
    pub(crate) parent: OwnedFd,
    /// The child's end (inherited).
    pub(crate) child: OwnedFd,
}

/// A channel from parent to child (`to_child`) or back. The parent's end is
/// close-on-exec; the child's end is inherited by the child only.
pub(crate) fn channel(kind: StreamKind, to_child: bool) -> Result<Channel, String> {
    let (a, b) = match kind {
        StreamKind::Pipe => {
            let (r, w) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe2 failed: {e}"))?;
            if to_child {
                (w, r)
            } else {
                (r, w)
            }
        }
        StreamKind::UnixSocket => socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("socketpair failed: {e}"))?,
    };
    fcntl(b.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|e| format!("cannot make a descriptor inheritable: {e}"))?;
    Ok(Channel {
        parent: a,
        child: b,
    })
}

/// Ping-pong of `size`-byte messages: one-way latency.
pub fn run_pingpong(
    ctx: &Ctx,
    kind: StreamKind,
    size: usize,
    warmup: u64,
    iters: u64,
) -> Result<Sample, String> {
    let total = warmup + iters;
    let (parent_w, parent_r, role, child_fds) = match kind {
        StreamKind::Pipe => {
            let down = channel(kind, true)?;
            let up = channel(kind, false)?;
            let role = Role::FdPong {
                read_fd: down.child.as_raw_fd(),
                write_fd: up.child.as_raw_fd(),
                size,
                total,
            };
            (
                File::from(down.parent),
                File::from(up.parent),
                role,
                vec![down.child, up.child],
            )
        }
        StreamKind::UnixSocket => {
            let both = channel(kind, true)?;
            let fd = both.child.as_raw_fd();
            let role = Role::FdPong {
                read_fd: fd,
                write_fd: fd,
                size,
                total,
            };
            let parent = File::from(both.parent);
            let parent_r = parent.try_clone().map_err(|e| format!("dup failed: {e}"))?;
            (parent, parent_r, role, vec![both.child])
        }
    };
    let session = Session::start(ctx, kind.name(), vec![role])?;
    // The child has its copies; ours would only keep the stream open.
    drop(child_fds);
    let mut out = vec![0xA5u8; size];
    let mut back = vec![0u8; size];
    let mut rec = RttRecorder::new();
    let io = |e: std::io::Error| format!("{} ping-pong failed: {e}", kind.name());
    for i in 0..total {
        out[..8.min(size)].copy_from_slice(&i.to_le_bytes()[..8.min(size)]);
        let t0 = now_ns();
        (&parent_w).write_all(&out).map_err(io)?;
        (&parent_r).read_exact(&mut back).map_err(io)?;
        let t1 = now_ns();
        if i >= warmup {
            rec.record(t1 - t0);
        }
    }
    session.finish()?;
    Ok(Sample::Latency(rec.one_way()))
}

/// Child side of the ping-pong: echo `total` messages.
pub fn pong_child(
    control: &Control,
    read_fd: i32,
    write_fd: i32,
    size: usize,
    total: u64,
) -> Result<(), String> {
    let (reader, writer) = inherited_pair(read_fd, write_fd)?;
    control.mark_ready();
    let mut buf = vec![0u8; size];
    for _ in 0..total {
        (&reader)
            .read_exact(&mut buf)
            .map_err(|e| format!("echo read failed: {e}"))?;
        (&writer)
            .write_all(&buf)
            .map_err(|e| format!("echo write failed: {e}"))?;
    }
    Ok(())
}

/// Stream of `warmup + measured` messages of `size` bytes from parent to
/// child: messages per second at the receiver.
pub fn run_throughput(
    ctx: &Ctx,
    kind: StreamKind,
    size: usize,
    warmup: u64,
    measured: u64,
) -> Result<Sample, String> {
    let total = warmup + measured;
    let ch = channel(kind, true)?;
    let role = Role::FdSink {
        read_fd: ch.child.as_raw_fd(),
        size,
        total,
        warmup,
    };
    let session = Session::start(ctx, kind.name(), vec![role])?;
    drop(ch.child);
    let writer = File::from(ch.parent);
    let mut msg = vec![0x5Au8; size];
    for i in 0..total {
        msg[..8.min(size)].copy_from_slice(&i.to_le_bytes()[..8.min(size)]);
        (&writer)
            .write_all(&msg)
            .map_err(|e| format!("{} write failed: {e}", kind.name()))?;
    }
    session.wait_results(1);
    let rate = session.control().result(0).rate()?;
    session.finish()?;
    Ok(Sample::Throughput { msgs_per_sec: rate })
}

/// Child side of the stream: read until `total` whole messages arrived,
/// timing from the end of message `warmup` to the end of the last one.
pub fn sink_child(
    control: &Control,
    index: usize,
    read_fd: i32,
    size: usize,
    total: u64,
    warmup: u64,
) -> Result<(), String> {
    // SAFETY: the parent passed us this descriptor, open and inheritable,
    // for our exclusive use; we own it from here on.
    let reader = File::from(unsafe { OwnedFd::from_raw_fd(read_fd) });
    let mut buf = vec![0u8; size.max(64 * 1024)];
    control.mark_ready();
    let want = total * size as u64;
    let mut bytes = 0u64;
    let mut first: Option<(u64, u64)> = None;
    while bytes < want {
        let n = (&reader)
            .read(&mut buf)
            .map_err(|e| format!("stream read failed: {e}"))?;
        if n == 0 {
            return Err(format!("stream closed after {bytes} of {want} bytes"));
        }
        bytes += n as u64;
        let complete = bytes / size as u64;
        if first.is_none() && complete > warmup {
            first = Some((now_ns(), complete));
        }
    }
    let last = now_ns();
    let (first_ns, first_count) = first.unwrap_or((last, total));
    control
        .result(index)
        .finish(first_ns, last, total - first_count);
    Ok(())
}

/// Takes ownership of the inherited descriptors; a socket uses one
/// descriptor for both directions (duplicated, so each handle closes its own).
fn inherited_pair(read_fd: i32, write_fd: i32) -> Result<(File, File), String> {
    // SAFETY: the parent passed these descriptors, open and inheritable, for
    // our exclusive use; we own them from here on.
    let reader = File::from(unsafe { OwnedFd::from_raw_fd(read_fd) });
    let writer = if write_fd == read_fd {
        reader.try_clone().map_err(|e| format!("dup failed: {e}"))?
    } else {
        // SAFETY: as above, a distinct inherited descriptor.
        File::from(unsafe { OwnedFd::from_raw_fd(write_fd) })
    };
    Ok((reader, writer))
}
