//! The list of cases a run executes, with their sizes and iteration counts.
//!
//! Counts are chosen so that each repetition takes a fraction of a second on
//! a two-core VM (enough samples for a stable median and a meaningful
//! p99.9), and `--quick` divides them so that a whole run takes seconds.

use crate::baselines::stream::StreamKind;
use crate::options::{BenchOptions, Group};
use crate::role::Wait;
use crate::shmbus_cases::fanout::FanOutMode;

/// One KiB.
pub const KIB: usize = 1024;
/// One MiB.
pub const MIB: usize = 1024 * 1024;

/// What a case measures and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CaseKind {
    /// Raw shared-memory spin ping-pong.
    SpinFloor,
    /// Raw shared-memory spin ping-pong carrying a 64-byte payload (payload
    /// line + counter line each way).
    SpinFloor64,
    /// Raw futex ping-pong.
    FutexFloor,
    /// Single-thread memcpy.
    Memcpy,
    /// Stream through a bare shared-memory ring (copy in, copy out).
    RingFloor,
    /// Ping-pong over a pipe or Unix socket.
    StreamLatency(StreamKind),
    /// Stream over a pipe or Unix socket.
    StreamThroughput(StreamKind),
    /// Ping-pong over two POSIX message queues.
    MqLatency,
    /// Stream over a POSIX message queue.
    MqThroughput,
    /// shmbus ping-pong.
    ShmbusLatency(Wait),
    /// shmbus 1 → 1 stream.
    ShmbusThroughput {
        /// Loan/recv_ref instead of send/recv.
        zero_copy: bool,
    },
    /// shmbus service: sequential calls (round trip), then pipelined calls
    /// (calls/s), client and server in the same wait strategy.
    ServiceRpc {
        /// How the client and the server wait.
        wait: Wait,
        /// Measured pipelined calls (`iters` are the sequential ones).
        pipelined: u64,
    },
    /// The same request/reply over a Unix stream socket.
    UnixRpc {
        /// Measured pipelined calls (`iters` are the sequential ones).
        pipelined: u64,
    },
    /// shmbus 1 → N.
    ShmbusFanOut {
        /// N.
        subscribers: usize,
        /// How the subscribers wait.
        mode: FanOutMode,
    },
}

/// One case with its counts.
#[derive(Clone, Debug)]
pub struct CaseDef {
    /// Stable identifier (JSON key, reference in ratios), e.g.
    /// `shmbus/latency/spin/64`.
    pub id: String,
    /// Group it belongs to.
    pub group: Group,
    /// Name in the table.
    pub label: String,
    /// Message size in bytes.
    pub size: usize,
    /// What it does.
    pub kind: CaseKind,
    /// Unmeasured leading iterations or messages.
    pub warmup: u64,
    /// Measured iterations or messages (bursts for fan-out).
    pub iters: u64,
}

/// Subscriber counts of the fan-out.
pub const FANOUT_SUBSCRIBERS: [usize; 5] = [1, 2, 4, 8, 16];

/// Stable ids of the cases the targets compare.
pub mod ids {
    /// Spin floor (one line each way).
    pub const SPIN_FLOOR: &str = "floor/spin";
    /// 64 B spin floor (payload line + counter line each way).
    pub const SPIN_FLOOR_64: &str = "floor/spin-64";
    /// Futex floor.
    pub const FUTEX_FLOOR: &str = "floor/futex";
    /// memcpy 1 MiB.
    pub const MEMCPY: &str = "floor/memcpy/1048576";
    /// Bare shared-memory ring stream of `size`-byte messages.
    pub fn ring(size: usize) -> String {
        format!("floor/ring/{size}")
    }
    /// Unix socket 64 B stream.
    pub const UNIX_TPUT_64: &str = "unix/throughput/64";
    /// Unix socket 64 B ping-pong.
    pub const UNIX_LAT_64: &str = "unix/latency/64";
    /// shmbus spin 64 B ping-pong.
    pub const SHMBUS_SPIN_64: &str = "shmbus/latency/spin/64";
    /// shmbus park 64 B ping-pong.
    pub const SHMBUS_PARK_64: &str = "shmbus/latency/park/64";
    /// shmbus copy 64 B stream.
    pub const SHMBUS_COPY_64: &str = "shmbus/throughput/copy/64";
    /// shmbus copy 1 MiB stream.
    pub const SHMBUS_COPY_1M: &str = "shmbus/throughput/copy/1048576";
    /// shmbus zero-copy 1 MiB stream.
    pub const SHMBUS_ZC_1M: &str = "shmbus/throughput/zero-copy/1048576";
    /// shmbus service call/serve, 64 B, client and server waiting in `wait`.
    pub fn service(wait: Wait) -> String {
        format!("services/{}/64", wait.name())
    }
    /// shmbus service, both ends spinning (the judged row).
    pub const SERVICE_SPIN_64: &str = "services/spin/64";
    /// Unix-socket request/reply, 64 B.
    pub const SERVICE_UNIX_64: &str = "services/unix/64";
    /// shmbus fan-out to N subscribers that poll (the judged series).
    pub fn fanout(n: usize) -> String {
        fanout_mode(FanOutMode::Poll, n)
    }
    /// shmbus fan-out to N subscribers waiting in `mode`.
    pub fn fanout_mode(mode: FanOutMode, n: usize) -> String {
        match mode {
            FanOutMode::Poll => format!("shmbus/fanout/{n}"),
            FanOutMode::Park => format!("shmbus/fanout-park/{n}"),
        }
    }
    use crate::role::Wait;
    use crate::shmbus_cases::fanout::FanOutMode;
}

/// Iteration budgets before `--quick` scaling.
struct Budget {
    spin_latency: u64,
    sleep_latency: u64,
}

/// Builds the cases `opts` selects, in report order.
pub fn cases(opts: &BenchOptions) -> Vec<CaseDef> {
    let div = if opts.quick { 20 } else { 1 };
    let b = Budget {
        spin_latency: 200_000 / div,
        sleep_latency: 30_000 / div,
    };
    let mut out = Vec::new();
    let mut add =
        |id: String, group: Group, label: String, size: usize, kind: CaseKind, iters: u64| {
            let iters = iters.max(10);
            out.push(CaseDef {
                id,
                group,
                label,
                size,
                kind,
                warmup: (iters / 10).max(2),
                iters,
            });
        };
    if opts.wants(Group::Floors) {
        add(
            ids::SPIN_FLOOR.into(),
            Group::Floors,
            "floor: spin, 1 line".into(),
            8,
            CaseKind::SpinFloor,
            b.spin_latency,
        );
        add(
            ids::SPIN_FLOOR_64.into(),
            Group::Floors,
            "floor: spin, 64 B".into(),
            64,
            CaseKind::SpinFloor64,
            b.spin_latency,
        );
        add(
            ids::FUTEX_FLOOR.into(),
            Group::Floors,
            "floor: futex wake".into(),
            4,
            CaseKind::FutexFloor,
            b.sleep_latency,
        );
        add(
            ids::MEMCPY.into(),
            Group::Floors,
            "memcpy, 1 thread".into(),
            MIB,
            CaseKind::Memcpy,
            3_000 / div,
        );
        for size in [64, 4 * KIB, MIB] {
            add(
                ids::ring(size),
                Group::Floors,
                "floor: shm ring, 2 copies".into(),
                size,
                CaseKind::RingFloor,
                shmbus_messages(size) / div,
            );
        }
    }
    if opts.wants(Group::Kernel) {
        for kind in [StreamKind::Pipe, StreamKind::UnixSocket] {
            let key = stream_key(kind);
            add(
                format!("{key}/latency/64"),
                Group::Kernel,
                kind.name().into(),
                64,
                CaseKind::StreamLatency(kind),
                b.sleep_latency,
            );
            for size in [64, 4 * KIB, MIB] {
                add(
                    format!("{key}/throughput/{size}"),
                    Group::Kernel,
                    kind.name().into(),
                    size,
                    CaseKind::StreamThroughput(kind),
                    kernel_messages(size) / div,
                );
            }
        }
        add(
            "mq/latency/64".into(),
            Group::Kernel,
            "posix mq".into(),
            64,
            CaseKind::MqLatency,
            b.sleep_latency,
        );
        for size in [64, 4 * KIB] {
            add(
                format!("mq/throughput/{size}"),
                Group::Kernel,
                "posix mq".into(),
                size,
                CaseKind::MqThroughput,
                kernel_messages(size) / div,
            );
        }
    }
    if opts.wants(Group::Latency) {
        for size in [64, 4 * KIB] {
            for wait in [Wait::Spin, Wait::SpinThenPark, Wait::Park] {
                let iters = if wait == Wait::Park {
                    b.sleep_latency
                } else {
                    b.spin_latency
                };
                add(
                    format!("shmbus/latency/{}/{size}", wait.name()),
                    Group::Latency,
                    format!("shmbus {}", wait.name()),
                    size,
                    CaseKind::ShmbusLatency(wait),
                    iters,
                );
            }
        }
    }
    if opts.wants(Group::Throughput) {
        for size in [64, 4 * KIB, MIB] {
            for zero_copy in [false, true] {
                let path = if zero_copy { "zero-copy" } else { "copy" };
                add(
                    format!("shmbus/throughput/{path}/{size}"),
                    Group::Throughput,
                    format!("shmbus {path}"),
                    size,
                    CaseKind::ShmbusThroughput { zero_copy },
                    shmbus_messages(size) / div,
                );
            }
        }
    }
    if opts.wants(Group::Fanout) {
        for mode in FanOutMode::ALL {
            for n in FANOUT_SUBSCRIBERS {
                add(
                    ids::fanout_mode(mode, n),
                    Group::Fanout,
                    format!("shmbus 1 -> {n}, {}", mode.name()),
                    crate::shmbus_cases::fanout::SIZE,
                    CaseKind::ShmbusFanOut {
                        subscribers: n,
                        mode,
                    },
                    200 / div,
                );
            }
        }
    }
    if opts.wants(Group::Services) {
        for wait in [Wait::Spin, Wait::SpinThenPark, Wait::Park] {
            let (iters, pipelined) = if wait == Wait::Park {
                (b.sleep_latency, 100_000)
            } else {
                (b.spin_latency / 2, 400_000)
            };
            add(
                ids::service(wait),
                Group::Services,
                format!("shmbus {}", wait.name()),
                64,
                CaseKind::ServiceRpc {
                    wait,
                    pipelined: pipelined / div,
                },
                iters,
            );
        }
        add(
            ids::SERVICE_UNIX_64.into(),
            Group::Services,
            "unix socket".into(),
            64,
            CaseKind::UnixRpc {
                pipelined: 60_000 / div,
            },
            b.sleep_latency,
        );
    }
    out
}

fn stream_key(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Pipe => "pipe",
        StreamKind::UnixSocket => "unix",
    }
}

/// Messages per repetition of a kernel stream (about 0.3 s each here).
fn kernel_messages(size: usize) -> u64 {
    match size {
        s if s <= 64 => 300_000,
        s if s <= 4 * KIB => 100_000,
        _ => 1_000,
    }
}

/// Messages per repetition of a shmbus stream.
fn shmbus_messages(size: usize) -> u64 {
    match size {
        s if s <= 64 => 2_000_000,
        s if s <= 4 * KIB => 400_000,
        _ => 3_000,
    }
}
