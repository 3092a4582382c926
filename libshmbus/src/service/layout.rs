//! The memory layout of a service's segment — an interface between
//! processes, drawn here next to the structs and constants that define it.
//! Everything else asks this module for offsets.
//!
//! A service is one POSIX shared-memory object, read-write for servers and
//! clients alike (both must write: clients the queue and their entries,
//! servers the queue's stamps and the reply slots).
//!
//! ```text
//! SERVICE segment  /dev/shm/shmbus.<bus>.<service with / as :>.svc
//! +--------+---------------------------------------------------------------+
//! | 0      | magic "SHMBUS\0R" u64 | version u32 | part=3 u32               |
//! | 16     | segment_size u64 | queue_capacity u32 | max_request_size u32 |
//! | 32     | max_reply_size u32 | max_servers u32 | max_clients u32        |
//! |        | max_in_flight u32                                             |
//! | 48     | name_len u32 | _ u32 | nonce u64                              |
//! | 64     | name [u8; 128]                                                |
//! | 192    | created_ns u64                                                |
//! | 256    | enqueue_pos u64           (own 128-byte line)                 |
//! | 384    | dequeue_pos u64           (own line)                          |
//! | 512    | request_ready: EventCount (own line; servers sleep on it)     |
//! | 640    | space_ready: EventCount   (own line; clients sleep on it)     |
//! | 768    | servers u32 | clients u32  (attached; own line)             |
//! | 896    | server_deaths u64 | reaped_clients u64 | dropped u64         |
//! | 1024   | ServiceCounters: counts of clients gone (own line):           |
//! |        |   calls u64 | replies u64 | errors u64 | timeouts u64 |       |
//! |        |   gone u64 | retries u64                                      |
//! | 1152   |   latency: LatencyHistogram, BUCKETS (305) × u64 ns counts   |
//! |        |   (every client adds each round trip: see `histogram.rs`)     |
//! | ...    | (zero up to 4096)                                             |
//! +--------+---------------------------------------------------------------+
//! | 4096   | ServerEntry[max_servers], 128 bytes each:                     |
//! |        |   state u32 | pid u32 | taken u64 | replied u64 | dropped u64 |
//! |        |   waiting u32                                                 |
//! +--------+---------------------------------------------------------------+
//! | clients| ClientEntry[max_clients], 128 bytes each:                     |
//! |        |   state u32 | pid u32 | next_corr u64 |                      |
//! |        |   reply_ready u32 | _ u32 | waiting u32 | waiting_on u32     |
//! |        |   calls u64 | replies u64 | timeouts u64 | gone u64          |
//! |        |   errors u64 | retries u64                                     |
//! |        |   (byte 0 of every entry is its OFD liveness-lock byte)       |
//! +--------+---------------------------------------------------------------+
//! | cells  | Cell[queue_capacity], cell_stride bytes (page-aligned start): |
//! |        |   +0  stamp u64 = pos << 12 | owner << 2 | state             |
//! |        |   +8  client u32 | slot u32 | +16 corr u64 | +24 len u32     |
//! |        |   +64 request payload [u8; max_request_size rounded to 64]    |
//! +--------+---------------------------------------------------------------+
//! | replies| ReplySlot[max_clients × max_in_flight] (page-aligned start):  |
//! |        |   +0  state u64 = corr << 16 | (taker+1) << 4 | state       |
//! |        |   +8  len u32 | status u32                                   |
//! |        |   +64 reply payload [u8; max_reply_size rounded to 64]        |
//! +--------+---------------------------------------------------------------+
//! ```
//!
//! Client `c`'s reply slots are `c × max_in_flight ..`: only client `c`
//! allocates them; servers write them only while holding them through a
//! state-word CAS (see `reply.rs`). Every field polled by one party and
//! written by another is on its own 128-byte stretch. The header's sizes
//! are read once, validated against each other and against the file size,
//! and kept in a private [`ServiceGeometry`]; nothing re-reads them.

use crate::error::{Error, Result};
use crate::eventcount::EventCount;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Magic of a service segment: `b"SHMBUS\0R"`.
pub const SERVICE_MAGIC: u64 = u64::from_le_bytes(*b"SHMBUS\0R");
/// Layout version of service segments.
/// Version 2 added the service counters and latency histogram at
/// [`COUNTERS_OFFSET`] and the clients' `errors`. The `retries` counters
/// (client entry and service counters) came later within version 2: they
/// sit in bytes that were zero and unused before, so an older segment
/// reads 0 retries, which is true of its clients (none could retry).
pub const SERVICE_VERSION: u32 = 2;
/// The header size, line spacing and entry size are the topics' own
/// (`crate::layout`): one set of constants for every segment.
pub use crate::layout::{ENTRY_SIZE, HEADER_SIZE, LINE};
/// Size of a cell's or reply slot's header; the payload follows it.
pub const CELL_HEADER_SIZE: usize = 64;
/// Largest request or reply.
pub const MAX_PAYLOAD: u32 = 16 << 20;
/// Largest queue capacity (cells).
pub const MAX_QUEUE: u32 = 1 << 16;
/// Largest number of servers, of clients, and of calls in flight per client
/// (entry indices are stored in 10-bit fields).
pub const MAX_MEMBERS: u32 = 1024;
/// Largest segment.
pub const MAX_SERVICE_SEGMENT: u64 = 4 << 30;
/// Offset of [`ServiceShared`].
pub const SHARED_OFFSET: usize = 256;
/// Offset of [`ServiceCounters`].
pub const COUNTERS_OFFSET: usize = 1024;

/// Settings of a service, fixed when its segment is created (by the first
/// server to attach).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Request queue cells; a power of two. Bounds the requests queued or
    /// being read in place by servers, across all clients.
    pub queue_capacity: u32,
    /// Largest request, bytes.
    pub max_request_size: u32,
    /// Largest reply, bytes.
    pub max_reply_size: u32,
    /// How many servers may be attached at once.
    pub max_servers: u32,
    /// How many clients may be attached at once.
    pub max_clients: u32,
    /// How many calls one client may have in flight (pipelining depth).
    pub max_in_flight: u32,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            queue_capacity: 256,
            max_request_size: 4096,
            max_reply_size: 4096,
            max_servers: 16,
            max_clients: 64,
            max_in_flight: 32,
        }
    }
}

fn round64(n: u32) -> u64 {
    u64::from(n).div_ceil(64) * 64
}

fn page_align(n: u64) -> u64 {
    n.div_ceil(HEADER_SIZE as u64) * HEADER_SIZE as u64
}

impl ServiceConfig {
    /// Checks every setting; the error names the rule broken.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let q = self.queue_capacity;
        if q < 2 || !q.is_power_of_two() || q > MAX_QUEUE {
            return bad(format!(
                "queue capacity {q} must be a power of two between 2 and {MAX_QUEUE}"
            ));
        }
        for (what, n) in [
            ("max request size", self.max_request_size),
            ("max reply size", self.max_reply_size),
        ] {
            if n == 0 || n > MAX_PAYLOAD {
                return bad(format!(
                    "{what} {n} must be between 1 and {MAX_PAYLOAD} bytes"
                ));
            }
        }
        for (what, n) in [
            ("max_servers", self.max_servers),
            ("max_clients", self.max_clients),
            ("max_in_flight", self.max_in_flight),
        ] {
            if n == 0 || n > MAX_MEMBERS {
                return bad(format!("{what} {n} must be between 1 and {MAX_MEMBERS}"));
            }
        }
        let total = self.segment_size();
        if total > MAX_SERVICE_SEGMENT {
            return bad(format!(
                "the service needs {total} bytes, over the limit of {MAX_SERVICE_SEGMENT}: lower the sizes or counts"
            ));
        }
        Ok(())
    }

    /// Bytes of one queue cell.
    pub fn cell_stride(&self) -> u64 {
        CELL_HEADER_SIZE as u64 + round64(self.max_request_size)
    }

    /// Bytes of one reply slot.
    pub fn reply_stride(&self) -> u64 {
        CELL_HEADER_SIZE as u64 + round64(self.max_reply_size)
    }

    /// Offset of client entry 0.
    pub fn clients_offset(&self) -> u64 {
        HEADER_SIZE as u64 + u64::from(self.max_servers) * ENTRY_SIZE as u64
    }

    /// Offset of queue cell 0.
    pub fn cells_offset(&self) -> u64 {
        page_align(self.clients_offset() + u64::from(self.max_clients) * ENTRY_SIZE as u64)
    }

    /// Offset of reply slot 0.
    pub fn replies_offset(&self) -> u64 {
        page_align(self.cells_offset() + u64::from(self.queue_capacity) * self.cell_stride())
    }

    /// Size of the segment (all of it is reserved at creation).
    pub fn segment_size(&self) -> u64 {
        let slots = u64::from(self.max_clients) * u64::from(self.max_in_flight);
        page_align(self.replies_offset() + slots * self.reply_stride())
    }
}

/// The validated shape of a service, copied out of shared memory once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceGeometry {
    /// Settings.
    pub config: ServiceConfig,
    /// `queue_capacity - 1`.
    pub mask: u64,
    /// Bytes per cell.
    pub cell_stride: usize,
    /// Bytes per reply slot.
    pub reply_stride: usize,
    /// Offset of client entry 0.
    pub clients_offset: usize,
    /// Offset of cell 0.
    pub cells_offset: usize,
    /// Offset of reply slot 0.
    pub replies_offset: usize,
    /// Size of the segment.
    pub size: usize,
    /// Random; tells incarnations of a service apart.
    pub nonce: u64,
}

impl ServiceGeometry {
    /// The geometry of a service with these settings.
    pub fn new(config: &ServiceConfig, nonce: u64) -> Result<ServiceGeometry> {
        config.validate()?;
        Ok(ServiceGeometry {
            config: config.clone(),
            mask: u64::from(config.queue_capacity) - 1,
            cell_stride: config.cell_stride() as usize,
            reply_stride: config.reply_stride() as usize,
            clients_offset: config.clients_offset() as usize,
            cells_offset: config.cells_offset() as usize,
            replies_offset: config.replies_offset() as usize,
            size: config.segment_size() as usize,
            nonce,
        })
    }

    /// Queue capacity.
    #[inline]
    pub fn capacity(&self) -> u64 {
        u64::from(self.config.queue_capacity)
    }

    /// Offset of server entry `i` (also its lock byte).
    #[inline]
    pub fn server_offset(&self, i: u32) -> usize {
        HEADER_SIZE + i as usize * ENTRY_SIZE
    }

    /// Offset of client entry `i` (also its lock byte).
    #[inline]
    pub fn client_offset(&self, i: u32) -> usize {
        self.clients_offset + i as usize * ENTRY_SIZE
    }

    /// Offset of the cell that holds position `pos`.
    #[inline]
    pub fn cell_offset(&self, pos: u64) -> usize {
        self.cells_offset + (pos & self.mask) as usize * self.cell_stride
    }

    /// Offset of reply slot `slot` of client `client`.
    #[inline]
    pub fn reply_offset(&self, client: u32, slot: u32) -> usize {
        let i = client as usize * self.config.max_in_flight as usize + slot as usize;
        self.replies_offset + i * self.reply_stride
    }
}

/// The immutable header of a service segment.
#[repr(C)]
pub struct ServiceHeader {
    /// [`SERVICE_MAGIC`]; the segment is only ever published under its name
    /// after everything else is written (see `mapped.rs`).
    pub magic: AtomicU64,
    /// [`SERVICE_VERSION`].
    pub version: u32,
    /// 3 = service.
    pub part: u32,
    /// Total bytes.
    pub segment_size: u64,
    /// Cells.
    pub queue_capacity: u32,
    /// Largest request.
    pub max_request_size: u32,
    /// Largest reply.
    pub max_reply_size: u32,
    /// Server entries.
    pub max_servers: u32,
    /// Client entries.
    pub max_clients: u32,
    /// Reply slots per client.
    pub max_in_flight: u32,
    /// Bytes of `name` in use.
    pub name_len: u32,
    _pad: u32,
    /// Random incarnation tag.
    pub nonce: u64,
    /// Service name.
    pub name: [u8; 128],
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
}

/// The mutable, shared part of the header.
#[repr(C)]
pub struct ServiceShared {
    /// Next queue position a client will try to claim (a hint that only
    /// grows; the cell stamps are the truth).
    pub enqueue_pos: AtomicU64,
    _pad0: [u8; LINE - 8],
    /// Next queue position a server will try to take (a hint likewise).
    pub dequeue_pos: AtomicU64,
    _pad1: [u8; LINE - 8],
    /// Clients notify it after queueing a request; idle servers wait on it.
    pub request_ready: EventCount,
    _pad2: [u8; LINE - 4],
    /// Servers notify it after freeing a cell; clients facing a full queue
    /// wait on it.
    pub space_ready: EventCount,
    _pad3: [u8; LINE - 4],
    /// Servers attached: +1 when an entry becomes active, -1 when it is
    /// freed (detach or reclaim), both under the entry's lock. Read by every
    /// call (fails fast with `NoServer` at 0), written rarely.
    pub servers: AtomicU32,
    /// Clients attached, counted likewise.
    pub clients: AtomicU32,
    _pad4: [u8; LINE - 8],
    /// Dead servers reclaimed.
    pub server_deaths: AtomicU64,
    /// Dead clients reclaimed.
    pub reaped_clients: AtomicU64,
    /// Requests or replies dropped because nobody waited for them any more.
    pub dropped: AtomicU64,
}

/// Adds one to a counter of an entry the caller owns.
///
/// An entry's counters have one writer at a time: its owner while it holds
/// the entry's liveness lock, then whoever frees the entry (under that
/// lock, so only once the owner is gone) folds them into the service's
/// totals. So a plain load and store counts exactly, and the call path
/// avoids a locked read-modify-write per counter (on x86 a `lock xadd`
/// drains the store buffer: tens of cycles, several per call). Readers
/// (`stats`) load Relaxed and may see a count a moment late.
#[inline]
pub(crate) fn count_own(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// One server's entry.
#[repr(C)]
pub struct ServerEntry {
    /// `ENTRY_FREE`/`ENTRY_ACTIVE`; changed only under the entry's lock.
    pub state: AtomicU32,
    /// Owner's pid, for humans.
    pub pid: AtomicU32,
    /// Requests taken.
    pub taken: AtomicU64,
    /// Replies delivered.
    pub replied: AtomicU64,
    /// Requests or replies dropped (the client had gone or given up).
    pub dropped: AtomicU64,
    /// 1 while announced as a waiter of `request_ready`.
    pub waiting: AtomicU32,
}

/// One client's entry.
#[repr(C)]
pub struct ClientEntry {
    /// `ENTRY_FREE`/`ENTRY_ACTIVE`; changed only under the entry's lock.
    pub state: AtomicU32,
    /// Owner's pid, for humans.
    pub pid: AtomicU32,
    /// Next correlation id; kept across owners of the entry so a new owner
    /// never reuses an id its dead predecessor may still get replies for.
    pub next_corr: AtomicU64,
    /// Servers notify it after a reply; the client waits on it.
    pub reply_ready: EventCount,
    _pad: u32,
    /// 1 while announced as a waiter (of `reply_ready` or `space_ready`).
    pub waiting: AtomicU32,
    /// Which event count `waiting` refers to: 0 `reply_ready`, 1 `space_ready`.
    pub waiting_on: AtomicU32,
    /// Calls made.
    pub calls: AtomicU64,
    /// Replies received.
    pub replies: AtomicU64,
    /// Calls given up on (timeout or cancel).
    pub timeouts: AtomicU64,
    /// Calls that ended in `ServerGone`.
    pub gone: AtomicU64,
    /// Calls answered with an error reply.
    pub errors: AtomicU64,
    /// Idempotent calls sent again after their server died (each one also
    /// counts in `calls`, and the attempt that died in `gone`).
    pub retries: AtomicU64,
}

/// The service's counters of calls made by clients no longer attached, and
/// the round-trip latency of every call. Clients count in their own entry
/// (no shared line on the call path); when an entry is freed its counts
/// are added here and zeroed, so the service's totals are these plus the
/// attached clients'. Only the histogram is written on every call.
#[cfg(not(loom))]
#[repr(C)]
pub struct ServiceCounters {
    /// Calls made.
    pub calls: AtomicU64,
    /// Replies received (not error replies).
    pub replies: AtomicU64,
    /// Error replies received.
    pub errors: AtomicU64,
    /// Calls given up (timeout, cancel).
    pub timeouts: AtomicU64,
    /// Calls that ended in `ServerGone`.
    pub gone: AtomicU64,
    /// Idempotent calls sent again after their server died.
    pub retries: AtomicU64,
    _pad: [u8; LINE - 48],
    /// Round trips (send to reply received, ns) of calls answered with a
    /// reply or an error reply.
    pub latency: crate::service::histogram::LatencyHistogram,
}

/// A queue cell's header; the request payload follows at [`CELL_HEADER_SIZE`].
#[repr(C)]
pub struct CellHeader {
    /// `pos << 12 | owner << 2 | state`: see `queue.rs`.
    pub stamp: AtomicU64,
    /// Calling client's entry index.
    pub client: AtomicU32,
    /// Reply slot (of that client) the reply goes to.
    pub slot: AtomicU32,
    /// Correlation id of the call.
    pub corr: AtomicU64,
    /// Request length.
    pub len: AtomicU32,
}

/// A reply slot's header; the reply payload follows at [`CELL_HEADER_SIZE`].
#[repr(C)]
pub struct ReplyHeader {
    /// `corr << 16 | (taker + 1) << 4 | state`: see `reply.rs`.
    pub state: AtomicU64,
    /// Reply length.
    pub len: AtomicU32,
    /// 0: a reply; 1: an error message from the server.
    pub status: AtomicU32,
}

/// `status` of a normal reply.
pub const STATUS_OK: u32 = 0;
/// `status` of an error reply (the payload is a UTF-8 message).
pub const STATUS_ERROR: u32 = 1;

#[cfg(not(loom))]
mod checks {
    use super::*;
    use std::mem::{offset_of, size_of};
    const _: () = assert!(offset_of!(ServiceHeader, name) == 64);
    const _: () = assert!(offset_of!(ServiceHeader, created_ns) == 192);
    const _: () = assert!(size_of::<ServiceHeader>() <= SHARED_OFFSET);
    const _: () = assert!(offset_of!(ServiceShared, dequeue_pos) == LINE);
    const _: () = assert!(offset_of!(ServiceShared, request_ready) == 2 * LINE);
    const _: () = assert!(offset_of!(ServiceShared, space_ready) == 3 * LINE);
    const _: () = assert!(offset_of!(ServiceShared, servers) == 4 * LINE);
    const _: () = assert!(offset_of!(ServiceShared, server_deaths) == 5 * LINE);
    const _: () = assert!(SHARED_OFFSET + size_of::<ServiceShared>() <= HEADER_SIZE);
    const _: () = assert!(size_of::<ServerEntry>() <= ENTRY_SIZE);
    const _: () = assert!(size_of::<ClientEntry>() <= ENTRY_SIZE);
    // `retries` was added in the zero bytes after `errors` (see
    // SERVICE_VERSION): the fields before it did not move.
    const _: () = assert!(offset_of!(ClientEntry, reply_ready) == 16);
    const _: () = assert!(offset_of!(ClientEntry, waiting) == 24);
    const _: () = assert!(offset_of!(ClientEntry, errors) == 64);
    const _: () = assert!(offset_of!(ClientEntry, retries) == 72);
    const _: () = assert!(offset_of!(ServiceCounters, retries) == 40);
    const _: () = assert!(SHARED_OFFSET + size_of::<ServiceShared>() <= COUNTERS_OFFSET);
    const _: () = assert!(offset_of!(ServiceCounters, latency) == LINE);
    const _: () = assert!(COUNTERS_OFFSET + size_of::<ServiceCounters>() <= HEADER_SIZE);
    const _: () = assert!(size_of::<CellHeader>() <= CELL_HEADER_SIZE);
    const _: () = assert!(size_of::<ReplyHeader>() <= CELL_HEADER_SIZE);
}

/// Validates a service segment's header (`header`: a private copy of its
/// first [`HEADER_SIZE`] bytes, `file_len`: the segment's size) and returns
/// its geometry. Refuses anything that does not fit exactly.
#[cfg(not(loom))]
pub fn read_service_header(
    segment: &str,
    header: &[u8],
    file_len: usize,
    expect_name: &str,
) -> Result<ServiceGeometry> {
    let corrupt = |what: String| Error::corrupt(segment, what);
    if file_len < HEADER_SIZE {
        return Err(corrupt(format!(
            "{} bytes is smaller than a header ({HEADER_SIZE})",
            file_len
        )));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(header[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |o: usize| u64::from_ne_bytes(header[o..o + 8].try_into().unwrap_or([0; 8]));
    let magic = u64_at(0);
    if magic != SERVICE_MAGIC {
        return Err(corrupt(format!(
            "wrong magic {magic:#018x} (not a shmbus service segment)"
        )));
    }
    let version = u32_at(8);
    if version != SERVICE_VERSION || u32_at(12) != 3 {
        return Err(corrupt(format!(
            "service layout version {version} part {}, this library reads version {SERVICE_VERSION}: use matching shmbus versions",
            u32_at(12)
        )));
    }
    let config = ServiceConfig {
        queue_capacity: u32_at(24),
        max_request_size: u32_at(28),
        max_reply_size: u32_at(32),
        max_servers: u32_at(36),
        max_clients: u32_at(40),
        max_in_flight: u32_at(44),
    };
    config
        .validate()
        .map_err(|e| corrupt(format!("header settings out of range: {e}")))?;
    let geo = ServiceGeometry::new(&config, u64_at(56))?;
    let claimed = u64_at(16);
    if claimed != geo.size as u64 || file_len as u64 != claimed {
        return Err(corrupt(format!(
            "size mismatch: file {} bytes, header says {claimed}, settings need {}",
            file_len, geo.size
        )));
    }
    let name_len = u32_at(48) as usize;
    if name_len > 128 || &header[64..64 + name_len] != expect_name.as_bytes() {
        return Err(corrupt(format!(
            "header names another service, not `{expect_name}`"
        )));
    }
    Ok(geo)
}

macro_rules! zeroed_ctor {
    ($($t:ident { $($f:ident : $v:expr),* $(,)? })*) => {$(
        impl $t {
            /// An all-zero value (what a fresh mapping holds); for heap models.
            #[allow(dead_code)]
            pub(crate) fn zeroed() -> $t {
                $t { $($f: $v),* }
            }
        }
    )*};
}

zeroed_ctor! {
    ServiceShared {
        enqueue_pos: AtomicU64::new(0), _pad0: [0; LINE - 8],
        dequeue_pos: AtomicU64::new(0), _pad1: [0; LINE - 8],
        request_ready: EventCount::new(), _pad2: [0; LINE - 4],
        space_ready: EventCount::new(), _pad3: [0; LINE - 4],
        servers: AtomicU32::new(0), clients: AtomicU32::new(0), _pad4: [0; LINE - 8],
        server_deaths: AtomicU64::new(0),
        reaped_clients: AtomicU64::new(0), dropped: AtomicU64::new(0),
    }
    CellHeader {
        stamp: AtomicU64::new(0), client: AtomicU32::new(0), slot: AtomicU32::new(0),
        corr: AtomicU64::new(0), len: AtomicU32::new(0),
    }
    ReplyHeader {
        state: AtomicU64::new(0), len: AtomicU32::new(0), status: AtomicU32::new(0),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn config_rules_are_named() {
        let ok = ServiceConfig::default();
        ok.validate().unwrap();
        let e = ServiceConfig {
            queue_capacity: 100,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
        let e = ServiceConfig {
            max_reply_size: 0,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("max reply size"), "{e}");
        let e = ServiceConfig {
            max_servers: 1025,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("max_servers"), "{e}");
        let e = ServiceConfig {
            max_clients: 1024,
            max_in_flight: 1024,
            max_reply_size: 1 << 20,
            ..ok
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("over the limit"), "{e}");
    }

    #[test]
    fn areas_are_ordered_aligned_and_disjoint() {
        let c = ServiceConfig::default();
        let g = ServiceGeometry::new(&c, 1).unwrap();
        assert_eq!(g.cells_offset % HEADER_SIZE, 0);
        assert_eq!(g.replies_offset % HEADER_SIZE, 0);
        assert!(g.server_offset(c.max_servers - 1) + ENTRY_SIZE <= g.clients_offset);
        assert!(g.client_offset(c.max_clients - 1) + ENTRY_SIZE <= g.cells_offset);
        assert!(g.cell_offset(u64::from(c.queue_capacity) - 1) + g.cell_stride <= g.replies_offset);
        assert_eq!(g.cell_offset(u64::from(c.queue_capacity)), g.cells_offset);
        assert!(g.reply_offset(c.max_clients - 1, c.max_in_flight - 1) + g.reply_stride <= g.size);
        assert_eq!(g.size % HEADER_SIZE, 0);
    }
}
