//! What travels from the parent to a child process: the [`ChildSpec`] in
//! the [`CHILD_ENV`] variable, and the [`Role`] in it that says what the
//! child does (for the shmbus cases a [`ShmbusRole`], with its [`Wait`]).
//!
//! Plain data at the bottom of the crate (it uses no other module of it):
//! the parent side ([`crate::supervisor`]) and the cases in
//! [`crate::baselines`] and [`crate::shmbus_cases`] build roles from it, and
//! the child side ([`crate::child`]) dispatches on them, so neither side has
//! to reach into the other.

use serde::{Deserialize, Serialize};
use shmbus::WaitStrategy;

/// Environment variable that turns a process into a benchmark child; its
/// value is the JSON of a [`ChildSpec`].
pub const CHILD_ENV: &str = "SHMBUS_BENCH_CHILD";

/// Everything a child needs: where the control block is, which result slot
/// is its own, which core to run on, and what to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildSpec {
    /// Pid of the parent; the child gives up if it is not its parent anymore.
    pub parent_pid: u32,
    /// `shm_open` name of the case's control region.
    pub region: String,
    /// This child's result slot (0 for single-child cases).
    pub index: usize,
    /// Core to pin to, if the machine has two.
    pub cpu: Option<usize>,
    /// The role.
    pub role: Role,
}

/// What the child does. `total` counts every message including warm-up;
/// `warmup` messages are not measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Role {
    /// Answer `total` spin pings (hardware floor).
    SpinPong {
        /// Round trips.
        total: u64,
    },
    /// Answer `total` spin pings carrying a 64-byte payload, echoing the
    /// payload (64 B hardware floor).
    SpinPong64 {
        /// Round trips.
        total: u64,
    },
    /// Answer `total` futex pings (wake-up floor).
    FutexPong {
        /// Round trips.
        total: u64,
    },
    /// Echo `total` messages of `size` bytes on a pipe or socket.
    FdPong {
        /// Fd to read pings from (inherited).
        read_fd: i32,
        /// Fd to write pongs to (inherited).
        write_fd: i32,
        /// Message size.
        size: usize,
        /// Round trips.
        total: u64,
    },
    /// Receive `total` messages of `size` bytes from a pipe or socket.
    FdSink {
        /// Fd to read from (inherited).
        read_fd: i32,
        /// Message size.
        size: usize,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
    },
    /// Echo `total` messages between two POSIX message queues.
    MqPong {
        /// Queue the pings arrive on.
        request: String,
        /// Queue the pongs go to.
        reply: String,
        /// Message size.
        size: usize,
        /// Round trips.
        total: u64,
    },
    /// Receive `total` messages from a POSIX message queue.
    MqSink {
        /// Queue name.
        queue: String,
        /// Message size.
        size: usize,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
    },
    /// Receive `total` messages from a bare shared-memory ring (copy floor).
    RingSink {
        /// `shm_open` name of the ring's slots.
        data: String,
        /// Message (and slot) size.
        size: usize,
        /// Slots in the ring.
        slots: u64,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
    },
    /// A shmbus role (see [`ShmbusRole`] and `shmbus_cases`).
    Shmbus(ShmbusRole),
}

/// A wait strategy as it travels to a child (serde-able mirror of
/// [`shmbus::WaitStrategy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Busy-spin.
    Spin,
    /// Spin a little, then sleep on the futex.
    SpinThenPark,
    /// Sleep on the futex at once.
    Park,
}

impl Wait {
    /// The library's value.
    pub fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Spin => WaitStrategy::Spin,
            Wait::SpinThenPark => WaitStrategy::SpinThenPark,
            Wait::Park => WaitStrategy::Park,
        }
    }

    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::SpinThenPark => "spin-then-park",
            Wait::Park => "park",
        }
    }
}

/// What a shmbus child does.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "shmbus", rename_all = "kebab-case")]
pub enum ShmbusRole {
    /// Subscribe to `ping`, publish every message back on `pong`.
    Pong {
        /// Bus name.
        bus: String,
        /// Topic the pings arrive on.
        ping: String,
        /// Topic the pongs go to.
        pong: String,
        /// Wait strategy of both ends.
        wait: Wait,
        /// Round trips.
        total: u64,
    },
    /// Create service `service` and answer `total` requests with the
    /// request itself.
    Serve {
        /// Bus name.
        bus: String,
        /// Service name.
        service: String,
        /// Server wait strategy.
        wait: Wait,
        /// Requests to answer.
        total: u64,
    },
    /// Subscribe to `topic` and receive `total` messages of `size` bytes.
    Sink {
        /// Bus name.
        bus: String,
        /// Topic.
        topic: String,
        /// Subscriber wait strategy.
        wait: Wait,
        /// Message size.
        size: usize,
        /// Messages.
        total: u64,
        /// Unmeasured leading messages.
        warmup: u64,
        /// Receive with `recv_ref` (zero-copy) instead of `recv`.
        zero_copy: bool,
        /// Store the received count after every message (fan-out bursts
        /// need it to know when every subscriber caught up).
        progress: bool,
        /// Poll with `try_recv` and `sched_yield` when nothing is there,
        /// instead of a blocking receive (fan-out on a shared core).
        yield_when_empty: bool,
    },
}
