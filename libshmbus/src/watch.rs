//! The pattern-subscription protocol between `shmbusd` and a
//! [`PatternSubscriber`](crate::PatternSubscriber): the wake page, and
//! frames that carry descriptors.
//!
//! # The protocol
//!
//! A pattern subscriber opens its own control connection and sends
//! `watch {patterns}`. The daemon records the patterns against that
//! connection and answers `watching {topics}`: the matching topics that
//! exist now, which the subscriber joins itself. With the answer comes the
//! subscription's **wake page** ([`WakePage`]), a sealed memfd the daemon
//! made.
//!
//! From then on, whenever the daemon creates a topic that the patterns
//! match and the subscriber may read, it does three things before it
//! answers whoever caused the creation:
//! 1. it attaches a subscriber entry at sequence 0 on the subscriber's
//!    behalf, holding the entry's liveness lock through a *new* open file
//!    description of the subs segment (`TopicOwner::reserve_subscriber`);
//! 2. it queues a `born {topic, entry, segments}` frame carrying that
//!    descriptor (`SCM_RIGHTS`) on the subscriber's connection;
//! 3. after writing announcement bytes to the connection, it bumps the wake
//!    page's word and `FUTEX_WAKE`s it.
//!
//! # Why no message of a new topic is lost
//!
//! The entry exists, at sequence 0, before the creator's reply is written,
//! so before any publisher can know the topic's segments: the first
//! publish already finds it in the gate (`block`) or counts against it
//! (`drop-oldest`: a lap before the subscriber adopts the entry is reported
//! as `Lagged(n)`, since the adopted cursor starts at 0 with no pre-join
//! history). The entry needs nobody alive to stay held except whoever holds
//! the descriptor: the daemon until the frame is sent, then the kernel (a
//! descriptor in flight in a socket), then the subscriber. If that chain
//! breaks (the daemon dies before sending, the subscriber dies or drops the
//! subscription before or after reading), the last description closes, the
//! lock is released, and the reaper frees the entry as it frees any dead
//! subscriber's: a dead pattern subscriber never holds publishers back.
//!
//! # Why a parked pattern subscriber never misses an announcement
//!
//! The subscriber parks on every member topic's `data_ready` word and on
//! the wake word at once (`futex_waitv`). Before it drains its connection
//! it reads the wake word; it then sleeps only while the word still has
//! that value. The daemon bumps the word only *after* the announcement's
//! bytes are in the socket. So either the drain found the bytes, or the
//! bump comes after the read and the kernel sees the word changed when the
//! subscriber tries to sleep (or wakes it if it already sleeps). Checked by
//! the loom model `loom_wake_word_never_sleeps_past_an_announcement`
//! (which deadlocks with the bump moved before the write). The member
//! topics' wake-ups are the ring's own (`eventcount.rs`).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::sync::{AtomicU32, Ordering};

/// Size of a wake page.
pub const WAKE_PAGE_SIZE: usize = 4096;

/// Seals a wake page carries: its size can no longer change (so a mapping
/// of it can never fault), nor its seals.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A pattern subscription's wake word: the first `u32` of a sealed memfd
/// that the daemon creates and both sides map. The daemon bumps it after
/// each announcement it writes; the subscriber parks on it.
#[derive(Debug)]
pub struct WakePage {
    file: File,
    map: MmapRaw,
}

impl WakePage {
    /// A fresh page (the daemon's side).
    pub fn create() -> Result<WakePage> {
        // SAFETY: a valid NUL-terminated name and flags; the result is
        // checked before use.
        let fd = unsafe {
            libc::memfd_create(
                c"shmbus-watch".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(Error::io(
                "cannot create a wake page (memfd_create)",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by
        // nobody else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.set_len(WAKE_PAGE_SIZE as u64)
            .map_err(|e| Error::io("cannot size a wake page", e))?;
        // SAFETY: fcntl on a descriptor we own, with an int argument.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
            return Err(Error::io(
                "cannot seal a wake page",
                io::Error::last_os_error(),
            ));
        }
        WakePage::map(file)
    }

    /// Maps a page the daemon passed (the subscriber's side), after checking
    /// that it is a sealed memfd of the right size, so that the mapping can
    /// never fault.
    pub fn from_file(file: File) -> Result<WakePage> {
        let bad = |why: String| {
            Error::Protocol(format!(
                "shmbusd passed a wake page that {why}; upgrade shmbusd, or report this"
            ))
        };
        // SAFETY: fcntl on a descriptor we own.
        let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & SEALS != SEALS {
            return Err(bad(format!("is not a sealed memfd (seals {seals:#x})")));
        }
        let len = file
            .metadata()
            .map_err(|e| Error::io("fstat the wake page", e))?
            .len();
        if len != WAKE_PAGE_SIZE as u64 {
            return Err(bad(format!("is {len} bytes long, not {WAKE_PAGE_SIZE}")));
        }
        WakePage::map(file)
    }

    fn map(file: File) -> Result<WakePage> {
        let map = MmapOptions::new()
            .len(WAKE_PAGE_SIZE)
            .map_raw(&file)
            .map_err(|e| Error::io("cannot map a wake page", e))?;
        Ok(WakePage { file, map })
    }

    /// The page's descriptor (to pass it on).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The wake word.
    pub fn word(&self) -> &AtomicU32 {
        // SAFETY: the mapping is WAKE_PAGE_SIZE bytes, page-aligned, lives
        // as long as `self`, and can neither shrink nor grow (sealed); the
        // word is only ever accessed atomically, by any process.
        unsafe { &*(self.map.as_mut_ptr() as *const AtomicU32) }
    }

    /// Moves the word on and wakes whoever sleeps on it (the daemon, after
    /// writing announcements to the connection).
    pub fn bump(&self) {
        // Release: pairs with the subscriber's Acquire load of the word
        // before it drains the connection.
        self.word().fetch_add(1, Ordering::Release);
        crate::futex::wake_all(self.word());
    }
}

/// Control-message room for the descriptors one `recvmsg` may bring. The
/// daemon attaches at most one per frame, and the kernel does not merge two
/// writes that carry descriptors into one read.
const MAX_FDS_PER_READ: usize = 4;

/// Sends `bytes` on the stream socket `sock` without blocking, attaching
/// `fd` (if any) to the first byte. Returns how many bytes went: a short
/// count leaves the rest to send without the descriptor, which has already
/// gone with the first byte. `MSG_NOSIGNAL`: a peer that closed gives
/// `EPIPE`, not SIGPIPE.
pub fn send_with_fd(sock: RawFd, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [IoSlice::new(bytes)];
    let raw = fd.map(|f| [f.as_raw_fd()]);
    let cmsgs: Vec<ControlMessage<'_>> = raw
        .as_ref()
        .map(|r| vec![ControlMessage::ScmRights(r)])
        .unwrap_or_default();
    sendmsg::<()>(
        sock,
        &iov,
        &cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)
}

/// A reader over a stream socket that keeps the descriptors arriving with
/// the bytes, in order, in `fds` (close-on-exec). A read whose descriptors
/// did not fit is an error: the stream can no longer be matched to them.
pub struct FdReader<'a> {
    /// The socket.
    pub sock: RawFd,
    /// Descriptors received so far and not yet taken.
    pub fds: &'a mut VecDeque<OwnedFd>,
    /// Whether a read may wait (up to the socket's receive timeout) rather
    /// than fail with `WouldBlock`.
    pub wait: bool,
}

impl io::Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_READ]);
        let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
        if !self.wait {
            flags |= MsgFlags::MSG_DONTWAIT;
        }
        let msg =
            recvmsg::<()>(self.sock, &mut iov, Some(&mut space), flags).map_err(io::Error::from)?;
        let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                for raw in received {
                    // SAFETY: the kernel just installed `raw` in this
                    // process for us; nobody else owns it.
                    self.fds.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        if truncated {
            return Err(io::Error::other(
                "descriptors passed by shmbusd did not fit the control buffer",
            ));
        }
        Ok(msg.bytes)
    }
}
