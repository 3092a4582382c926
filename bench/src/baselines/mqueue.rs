//! Baseline: POSIX message queues (`mq_open`/`mq_send`/`mq_receive`), the
//! kernel's own message-oriented IPC: one system call and one copy per
//! message on each side. Queues hold 10 messages (the default `msg_max`, the
//! most an unprivileged process may ask for) of at most 8 KiB (the default
//! `msgsize_max`), so 1 MiB messages cannot be measured on them.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cleanup::{self, Resource};
use crate::clock::now_ns;
use crate::control::Control;
use crate::role::Role;
use crate::stats::{RttRecorder, Sample};
use crate::supervisor::{Ctx, Session};

/// Largest message a queue takes without raising `/proc/sys/fs/mqueue/msgsize_max`.
pub const MAX_MSG: usize = 8192;
/// Queue depth: the unprivileged default limit.
const DEPTH: libc::c_long = 10;

/// An open queue descriptor; the creator also unlinks the name on drop.
struct Queue {
    name: String,
    mqd: libc::mqd_t,
    owner: bool,
}

impl Queue {
    fn create(size: usize) -> Result<Queue, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "/{}{}-mq-{}",
            cleanup::REGION_PREFIX,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let cname = CString::new(name.as_str()).map_err(|e| e.to_string())?;
        // SAFETY: mq_attr is plain data; all-zero is a valid starting value.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = DEPTH;
        attr.mq_msgsize = size as libc::c_long;
        // SAFETY: `cname` is NUL-terminated, `attr` lives across the call,
        // and the variadic mode/attr arguments are what O_CREAT requires.
        let mqd = unsafe {
            libc::mq_open(
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
                &attr as *const libc::mq_attr,
            )
        };
        if mqd < 0 {
            return Err(format!(
                "mq_open({name}) failed: {} (are POSIX message queues enabled? see /proc/sys/fs/mqueue)",
                std::io::Error::last_os_error()
            ));
        }
        cleanup::register(Resource::Mqueue(name.clone()));
        Ok(Queue {
            name,
            mqd,
            owner: true,
        })
    }

    fn open(name: &str) -> Result<Queue, String> {
        let cname = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: `cname` is NUL-terminated; no O_CREAT, so no variadic args.
        let mqd = unsafe { libc::mq_open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if mqd < 0 {
            return Err(format!(
                "mq_open({name}) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Queue {
            name: name.to_string(),
            mqd,
            owner: false,
        })
    }

    fn send(&self, msg: &[u8]) -> Result<(), String> {
        loop {
            // SAFETY: `msg` is a live buffer of the given length.
            let r = unsafe { libc::mq_send(self.mqd, msg.as_ptr().cast(), msg.len(), 0) };
            if r == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("mq_send failed: {e}"));
            }
        }
    }

    /// Receives into `buf` (at least the queue's message size); returns the length.
    fn receive(&self, buf: &mut [u8]) -> Result<usize, String> {
        loop {
            // SAFETY: `buf` is a live writable buffer of the given length.
            let r = unsafe {
                libc::mq_receive(
                    self.mqd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("mq_receive failed: {e}"));
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `mqd` is an open descriptor we own.
        unsafe { libc::mq_close(self.mqd) };
        if self.owner {
            if let Ok(c) = CString::new(self.name.as_str()) {
                // SAFETY: NUL-terminated name.
                unsafe { libc::mq_unlink(c.as_ptr()) };
            }
            cleanup::unregister(&Resource::Mqueue(self.name.clone()));
        }
    }
}

/// Ping-pong of `size`-byte messages over two queues: one-way latency.
pub fn run_pingpong(ctx: &Ctx, size: usize, warmup: u64, iters: u64) -> Result<Sample, String> {
    let total = warmup + iters;
    let request = Queue::create(size)?;
    let reply = Queue::create(size)?;
    let role = Role::MqPong {
        request: request.name.clone(),
        reply: reply.name.clone(),
        size,
        total,
    };
    let session = Session::start(ctx, "posix mq", vec![role])?;
    let mut out = vec![0xA5u8; size];
    let mut back = vec![0u8; size];
    let mut rec = RttRecorder::new();
    for i in 0..total {
        out[..8.min(size)].copy_from_slice(&i.to_le_bytes()[..8.min(size)]);
        let t0 = now_ns();
        request.send(&out)?;
        reply.receive(&mut back)?;
        let t1 = now_ns();
        if i >= warmup {
            rec.record(t1 - t0);
        }
    }
    session.finish()?;
    Ok(Sample::Latency(rec.one_way()))
}

/// Child side of the ping-pong.
pub fn pong_child(
    control: &Control,
    request: &str,
    reply: &str,
    size: usize,
    total: u64,
) -> Result<(), String> {
    let request = Queue::open(request)?;
    let reply = Queue::open(reply)?;
    control.mark_ready();
    let mut buf = vec![0u8; size];
    for _ in 0..total {
        let n = request.receive(&mut buf)?;
        reply.send(&buf[..n])?;
    }
    Ok(())
}

/// Stream of `warmup + measured` messages through one queue: messages per
/// second at the receiver.
pub fn run_throughput(
    ctx: &Ctx,
    size: usize,
    warmup: u64,
    measured: u64,
) -> Result<Sample, String> {
    let total = warmup + measured;
    let queue = Queue::create(size)?;
    let role = Role::MqSink {
        queue: queue.name.clone(),
        size,
        total,
        warmup,
    };
    let session = Session::start(ctx, "posix mq", vec![role])?;
    let mut msg = vec![0x5Au8; size];
    for i in 0..total {
        msg[..8.min(size)].copy_from_slice(&i.to_le_bytes()[..8.min(size)]);
        queue.send(&msg)?;
    }
    session.wait_results(1);
    let rate = session.control().result(0).rate()?;
    session.finish()?;
    Ok(Sample::Throughput { msgs_per_sec: rate })
}

/// Child side of the stream.
pub fn sink_child(
    control: &Control,
    index: usize,
    queue: &str,
    size: usize,
    total: u64,
    warmup: u64,
) -> Result<(), String> {
    let queue = Queue::open(queue)?;
    control.mark_ready();
    let mut buf = vec![0u8; size];
    let mut first_ns = 0;
    for i in 0..total {
        let n = queue.receive(&mut buf)?;
        if n != size {
            return Err(format!("message {i} has {n} bytes, expected {size}"));
        }
        if i == warmup {
            first_ns = now_ns();
        }
    }
    let last = now_ns();
    control
        .result(index)
        .finish(first_ns, last, total - warmup - 1);
    Ok(())
}
