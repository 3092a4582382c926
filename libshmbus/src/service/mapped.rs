//! A service's mapped segment: creating it (atomically: it appears under its
//! name only once fully initialised), opening and validating it, typed
//! access to its parts, taking a server or client entry, and reclaiming the
//! entries of dead processes.
//!
//! # Creation without a half-made segment
//!
//! The first server creates the segment. Two servers may race, and a
//! process may die while initialising; a reader must never see a segment
//! under the service's name that is not complete. So the creator makes it
//! under a temporary name (`<name>.new-<pid>-<random>`, still under the
//! bus's prefix so `remove_bus_segments` catches a leftover), writes the
//! header and the queue's initial stamps, and then `link(2)`s it to the
//! final name — which fails with `EEXIST` if another server won the race;
//! the loser removes its copy and opens the winner's.
//!
//! # Reclaiming the dead
//!
//! Entries carry OFD liveness locks (see [`crate::liveness`]). Whoever
//! finds an active entry whose lock it can take knows its owner is dead and,
//! holding the lock, reclaims what it held:
//! * a dead **server**: its `TAKEN` queue cells are freed, and every call it
//!   held (cells it took but had not claimed the reply of, and reply slots
//!   it had claimed) ends `GONE`, which wakes the callers with `ServerGone`;
//! * a dead **client**: its `WRITING` cells are freed (so the queue head
//!   moves on), its reply slots are reset except those a live server is
//!   writing (the next owner waits for those to settle).
//!
//! Callers: a client waiting for a reply (every ~100 ms, for the server that
//! holds its call, or for all when its call is still queued), a party facing
//! a blocked queue (for the holder of the cell in the way), and every new
//! owner of an entry (for its predecessor).

use crate::error::{Error, Result};
use crate::layout::{ENTRY_ACTIVE, ENTRY_FREE};
use crate::liveness;
use crate::names;
use crate::segment::{self, Segment, Trust};
use crate::service::layout::{
    self as sl, CellHeader, ClientEntry, ReplyHeader, ServerEntry, ServiceConfig, ServiceCounters,
    ServiceGeometry, ServiceHeader, ServiceShared, CELL_HEADER_SIZE, COUNTERS_OFFSET,
    SHARED_OFFSET,
};
use crate::service::queue::{self, QueueMemory};
use crate::service::reply;
use crate::sync::{AtomicU64, Ordering};

/// Which party an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

/// A service segment, mapped and validated.
#[derive(Debug)]
pub(crate) struct MappedService {
    service: String,
    /// The segment's name in /dev/shm (its creator mapped it under a
    /// temporary name first).
    name: String,
    seg: Segment,
    geo: ServiceGeometry,
    /// Our own entry, which the reaping helpers must never take for dead
    /// (our own lock is re-takeable through our own file description).
    own: Option<(Role, u32)>,
}

fn is_enoent(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
}

impl MappedService {
    /// Opens the service's segment. `Ok(None)` if it does not exist.
    ///
    /// Services live without the daemon, and their segments are owner-only:
    /// only a file of this process's own uid with mode 0600 is trusted (see
    /// `segment`'s *Identity*); a file someone else made under the name is
    /// [`Error::Untrusted`], naming its owner.
    pub(crate) fn open(bus: &str, service: &str) -> Result<Option<MappedService>> {
        names::validate_bus(bus)?;
        names::validate_service(service)?;
        let name = names::service_segment_name(bus, service);
        let trust = Trust {
            uid: segment::euid(),
            modes: segment::SERVICE_MODES,
        };
        let seg = match Segment::open(&name, true, &trust) {
            Ok(s) => s,
            Err(e) if is_enoent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Validated from a private copy (`Segment::header`), never trusted
        // again.
        let geo = sl::read_service_header(&name, &seg.header(sl::HEADER_SIZE), seg.len(), service)?;
        Ok(Some(MappedService {
            service: service.to_string(),
            name,
            seg,
            geo,
            own: None,
        }))
    }

    /// Opens the service's segment, creating it with `cfg` if it does not
    /// exist yet (a racing creator's segment wins; `cfg` is then unused).
    pub(crate) fn open_or_create(
        bus: &str,
        service: &str,
        cfg: &ServiceConfig,
        mode: u32,
    ) -> Result<MappedService> {
        if let Some(m) = MappedService::open(bus, service)? {
            return Ok(m);
        }
        let geo = ServiceGeometry::new(cfg, segment::random_nonce())?;
        let final_name = names::service_segment_name(bus, service);
        let tmp = format!("{final_name}.new-{}-{:x}", std::process::id(), geo.nonce);
        let seg = Segment::create(&tmp, geo.size, mode, None)?;
        let m = MappedService {
            service: service.to_string(),
            name: final_name.clone(),
            seg,
            geo,
            own: None,
        };
        m.init();
        let linked = std::fs::hard_link(segment::shm_file(&tmp), segment::shm_file(&final_name));
        let _ = Segment::unlink(&tmp);
        match linked {
            Ok(()) => Ok(m),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                drop(m);
                MappedService::open(bus, service)?.ok_or_else(|| {
                    Error::io(
                        format!("segment {final_name} vanished while being opened"),
                        std::io::Error::from_raw_os_error(libc::ENOENT),
                    )
                })
            }
            Err(e) => Err(Error::io(format!("cannot publish segment {final_name}"), e)),
        }
    }

    /// Writes the header and the queue's initial stamps of a fresh, private
    /// (not yet linked) segment; the magic goes last.
    fn init(&self) {
        let cfg = &self.geo.config;
        queue::init(self);
        // SAFETY: the mapping is fresh, zero-filled, at least HEADER_SIZE
        // long, page-aligned, and nobody else can see it yet (temporary name).
        unsafe {
            let h = &mut *(self.seg.as_ptr() as *mut ServiceHeader);
            h.version = sl::SERVICE_VERSION;
            h.part = 3;
            h.segment_size = self.geo.size as u64;
            h.queue_capacity = cfg.queue_capacity;
            h.max_request_size = cfg.max_request_size;
            h.max_reply_size = cfg.max_reply_size;
            h.max_servers = cfg.max_servers;
            h.max_clients = cfg.max_clients;
            h.max_in_flight = cfg.max_in_flight;
            h.name_len = self.service.len() as u32;
            h.nonce = self.geo.nonce;
            h.name[..self.service.len()].copy_from_slice(self.service.as_bytes());
            h.created_ns = crate::clock::realtime_ns();
            h.magic.store(sl::SERVICE_MAGIC, Ordering::Release);
        }
    }

    /// Whether callers can still find this segment: its name in /dev/shm
    /// still leads to the file mapped here (not removed by `shmbusd`'s
    /// shutdown, `--clean` or an `rm`, nor replaced).
    pub(crate) fn is_linked(&self) -> bool {
        self.seg.is_linked_as(&self.name)
    }

    /// Service name.
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// Validated geometry.
    pub(crate) fn geo(&self) -> &ServiceGeometry {
        &self.geo
    }

    /// Settings.
    pub(crate) fn config(&self) -> &ServiceConfig {
        &self.geo.config
    }

    /// Shared header words.
    #[inline]
    pub(crate) fn shared(&self) -> &ServiceShared {
        // SAFETY: SHARED_OFFSET + size_of::<ServiceShared>() ≤ HEADER_SIZE ≤
        // the validated mapping length; atomics and padding are valid for
        // any bytes; the mapping is page-aligned.
        unsafe { &*(self.seg.as_ptr().add(SHARED_OFFSET) as *const ServiceShared) }
    }

    /// The service's counters and latency histogram.
    #[inline]
    pub(crate) fn counters(&self) -> &ServiceCounters {
        // SAFETY: COUNTERS_OFFSET + size_of::<ServiceCounters>() ≤
        // HEADER_SIZE ≤ the validated mapping length (checked at compile
        // time in layout.rs); atomics and padding are valid for any bytes;
        // the offset is 128-byte aligned in a page-aligned mapping.
        unsafe { &*(self.seg.as_ptr().add(COUNTERS_OFFSET) as *const ServiceCounters) }
    }

    /// Server entry `i` (clamped into range: callers validate first).
    #[inline]
    pub(crate) fn server(&self, i: u32) -> &ServerEntry {
        let i = i.min(self.geo.config.max_servers - 1);
        // SAFETY: entry i < max_servers lies before the client table, inside
        // the validated mapping; 128-byte aligned.
        unsafe { &*(self.seg.as_ptr().add(self.geo.server_offset(i)) as *const ServerEntry) }
    }

    /// Client entry `i` (clamped into range).
    #[inline]
    pub(crate) fn client(&self, i: u32) -> &ClientEntry {
        let i = i.min(self.geo.config.max_clients - 1);
        // SAFETY: entry i < max_clients lies before the cells, inside the
        // validated mapping; 128-byte aligned.
        unsafe { &*(self.seg.as_ptr().add(self.geo.client_offset(i)) as *const ClientEntry) }
    }

    /// Reply slot `slot` of client `client` (both clamped into range).
    #[inline]
    pub(crate) fn reply_slot(&self, client: u32, slot: u32) -> &ReplyHeader {
        let c = client.min(self.geo.config.max_clients - 1);
        let s = slot.min(self.geo.config.max_in_flight - 1);
        // SAFETY: reply_offset(c, s) + reply_stride ≤ size (checked in
        // layout tests and by construction); 64-byte aligned.
        unsafe { &*(self.seg.as_ptr().add(self.geo.reply_offset(c, s)) as *const ReplyHeader) }
    }

    /// The `max_reply_size` payload bytes of a reply slot.
    #[inline]
    pub(crate) fn reply_payload(&self, client: u32, slot: u32) -> *mut u8 {
        let c = client.min(self.geo.config.max_clients - 1);
        let s = slot.min(self.geo.config.max_in_flight - 1);
        // SAFETY: inside the slot, which lies inside the mapping.
        unsafe {
            self.seg
                .as_ptr()
                .add(self.geo.reply_offset(c, s) + CELL_HEADER_SIZE)
        }
    }

    /// The `max_request_size` payload bytes of the cell of `pos`.
    #[inline]
    pub(crate) fn cell_payload(&self, pos: u64) -> *mut u8 {
        // SAFETY: inside the cell, which lies inside the mapping.
        unsafe {
            self.seg
                .as_ptr()
                .add(self.geo.cell_offset(pos) + CELL_HEADER_SIZE)
        }
    }

    fn lock_offset(&self, role: Role, i: u32) -> usize {
        match role {
            Role::Server => self.geo.server_offset(i),
            Role::Client => self.geo.client_offset(i),
        }
    }

    fn state(&self, role: Role, i: u32) -> u32 {
        match role {
            Role::Server => self.server(i).state.load(Ordering::Acquire),
            Role::Client => self.client(i).state.load(Ordering::Acquire),
        }
    }

    /// Takes a server or client entry for this process: holds its lock, has
    /// reclaimed a dead predecessor, and marks it active. Prefers never-used
    /// or cleanly freed entries, then those of dead owners.
    pub(crate) fn acquire_entry(&mut self, role: Role) -> Result<u32> {
        let max = match role {
            Role::Server => self.geo.config.max_servers,
            Role::Client => self.geo.config.max_clients,
        };
        for want_free in [true, false] {
            for i in 0..max {
                if (self.state(role, i) == ENTRY_FREE) != want_free {
                    continue;
                }
                let off = self.lock_offset(role, i);
                if !liveness::try_acquire(self.seg.file(), off)? {
                    continue;
                }
                // The lock was free: any owner recorded here is dead.
                self.reclaim(role, i, true);
                let pid = std::process::id();
                match role {
                    Role::Server => {
                        let e = self.server(i);
                        e.pid.store(pid, Ordering::Relaxed);
                        e.waiting.store(0, Ordering::Relaxed);
                        e.state.store(ENTRY_ACTIVE, Ordering::Release);
                        self.shared().servers.fetch_add(1, Ordering::AcqRel);
                    }
                    Role::Client => {
                        let e = self.client(i);
                        e.pid.store(pid, Ordering::Relaxed);
                        e.waiting.store(0, Ordering::Relaxed);
                        e.state.store(ENTRY_ACTIVE, Ordering::Release);
                        self.shared().clients.fetch_add(1, Ordering::AcqRel);
                    }
                }
                self.own = Some((role, i));
                return Ok(i);
            }
        }
        let (what, key) = match role {
            Role::Server => ("servers", "max_servers"),
            Role::Client => ("clients", "max_clients"),
        };
        Err(Error::ServiceLimit {
            service: self.service.clone(),
            what: format!(
                "all {max} {what} entries are taken: stop some {what}, or recreate the service with a larger {key}"
            ),
        })
    }

    /// Gives our own entry back after reclaiming what it still held (calls
    /// a server never answered end `GONE`; a client's calls are dropped).
    pub(crate) fn release_own(&mut self) {
        if let Some((role, i)) = self.own.take() {
            self.reclaim(role, i, false);
            liveness::release(self.seg.file(), self.lock_offset(role, i));
        }
    }

    /// Whether the owner of entry `i` is alive (holds its lock). Errors of
    /// the probe count as alive: never declare the living dead.
    pub(crate) fn alive(&self, role: Role, i: u32) -> bool {
        if self.own == Some((role, i)) {
            return true;
        }
        liveness::is_held(self.seg.file(), self.lock_offset(role, i)).unwrap_or(true)
    }

    /// If entry `i` is active and its owner dead, reclaims it. Returns
    /// whether it did.
    pub(crate) fn try_reap(&self, role: Role, i: u32) -> bool {
        if self.own == Some((role, i)) || self.state(role, i) == ENTRY_FREE {
            return false;
        }
        let off = self.lock_offset(role, i);
        if !matches!(liveness::try_acquire(self.seg.file(), off), Ok(true)) {
            return false;
        }
        let reaped = self.state(role, i) != ENTRY_FREE;
        if reaped {
            self.reclaim(role, i, true);
        }
        liveness::release(self.seg.file(), off);
        reaped
    }

    /// Reclaims every dead server; returns how many.
    pub(crate) fn reap_dead_servers(&self) -> u32 {
        (0..self.geo.config.max_servers)
            .filter(|&i| self.try_reap(Role::Server, i))
            .count() as u32
    }

    /// Servers attached (dead ones count until reaped).
    pub(crate) fn servers(&self) -> u32 {
        self.shared().servers.load(Ordering::Acquire)
    }

    /// The holder of a queue cell that blocks us is checked, and reclaimed
    /// if dead. `blocker` is the stamp that blocked a claim or a take.
    pub(crate) fn reap_blocker(&self, blocker: u64) -> bool {
        let owner = queue::owner_of(blocker);
        match queue::state_of(blocker) {
            queue::state::WRITING if owner < self.geo.config.max_clients => {
                !self.alive(Role::Client, owner) && self.try_reap(Role::Client, owner)
            }
            queue::state::TAKEN if owner < self.geo.config.max_servers => {
                !self.alive(Role::Server, owner) && self.try_reap(Role::Server, owner)
            }
            _ => false,
        }
    }

    /// Reclaims entry `i`. The caller holds its lock (so its owner is dead,
    /// or is the caller detaching). `died`: count it as a death.
    fn reclaim(&self, role: Role, i: u32, died: bool) {
        match role {
            Role::Server => self.reclaim_server(i, died),
            Role::Client => self.reclaim_client(i, died),
        }
    }

    fn reclaim_server(&self, s: u32, died: bool) {
        let e = self.server(s);
        if e.state.load(Ordering::Acquire) == ENTRY_FREE {
            return;
        }
        let cfg = &self.geo.config;
        let sh = self.shared();
        // Requests it took out of the queue: their calls end GONE if it had
        // not claimed their reply slots yet; the cells are freed.
        for (pos, _) in queue::owned_cells(self, s, queue::state::TAKEN) {
            let cell = self.cell(pos);
            let c = cell.client.load(Ordering::Relaxed);
            let r = cell.slot.load(Ordering::Relaxed);
            let corr = cell.corr.load(Ordering::Relaxed);
            if c < cfg.max_clients
                && r < cfg.max_in_flight
                && reply::mark_gone(self.reply_slot(c, r), corr, None)
            {
                self.client(c).reply_ready.notify_all();
            }
            if queue::free(self, pos, s, queue::state::TAKEN) {
                sh.space_ready.notify_all();
            }
        }
        // Calls whose reply it had claimed.
        for c in 0..cfg.max_clients {
            let mut hit = false;
            for r in 0..cfg.max_in_flight {
                let slot = self.reply_slot(c, r);
                let w = reply::unpack(slot.state.load(Ordering::Acquire));
                if w.taker == Some(s) && matches!(w.state, reply::st::TAKEN | reply::st::WRITING) {
                    hit |= reply::mark_gone(slot, w.corr, Some(s));
                }
            }
            if hit {
                self.client(c).reply_ready.notify_all();
            }
        }
        e.waiting.store(0, Ordering::Relaxed);
        e.pid.store(0, Ordering::Relaxed);
        e.state.store(ENTRY_FREE, Ordering::Release);
        let _ = sh
            .servers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if died {
            sh.server_deaths.fetch_add(1, Ordering::Relaxed);
        }
        // Waiting clients re-check (their call may now be GONE, or there may
        // be no server left).
        sh.space_ready.force_notify_all();
    }

    fn reclaim_client(&self, c: u32, died: bool) {
        let e = self.client(c);
        if e.state.load(Ordering::Acquire) == ENTRY_FREE {
            return;
        }
        let cfg = &self.geo.config;
        let sh = self.shared();
        // Requests it was writing: free the cells so the queue head moves on.
        let mut freed = false;
        for (pos, _) in queue::owned_cells(self, c, queue::state::WRITING) {
            freed |= queue::free(self, pos, c, queue::state::WRITING);
        }
        if freed {
            sh.request_ready.force_notify_all();
            sh.space_ready.notify_all();
        }
        // Its calls: servers that answer them now find their CAS failing and
        // drop the reply. A slot a live server is writing is left alone; the
        // next owner sets it aside until it settles.
        for r in 0..cfg.max_in_flight {
            let slot = self.reply_slot(c, r);
            let now = slot.state.load(Ordering::Acquire);
            if reply::unpack(now).state != reply::st::WRITING {
                let _ = slot
                    .state
                    .compare_exchange(now, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
        e.waiting.store(0, Ordering::Relaxed);
        // Its counts join those of the clients gone before it; the entry
        // starts from zero for its next owner.
        let sc = self.counters();
        for (from, to) in [
            (&e.calls, &sc.calls),
            (&e.replies, &sc.replies),
            (&e.errors, &sc.errors),
            (&e.timeouts, &sc.timeouts),
            (&e.gone, &sc.gone),
            (&e.retries, &sc.retries),
        ] {
            // Wrapping, like every counter in shared memory.
            to.fetch_add(from.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        e.pid.store(0, Ordering::Relaxed);
        e.state.store(ENTRY_FREE, Ordering::Release);
        let _ = sh
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if died {
            sh.reaped_clients.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl QueueMemory for MappedService {
    #[inline]
    fn capacity(&self) -> u64 {
        self.geo.capacity()
    }
    #[inline]
    fn enqueue_pos(&self) -> &AtomicU64 {
        &self.shared().enqueue_pos
    }
    #[inline]
    fn dequeue_pos(&self) -> &AtomicU64 {
        &self.shared().dequeue_pos
    }
    #[inline]
    fn cell(&self, pos: u64) -> &CellHeader {
        // SAFETY: cell_offset(pos) masks pos into the queue, which lies
        // inside the validated mapping; 64-byte aligned.
        unsafe { &*(self.seg.as_ptr().add(self.geo.cell_offset(pos)) as *const CellHeader) }
    }
}

impl Drop for MappedService {
    fn drop(&mut self) {
        self.release_own();
    }
}
