//! A small POSIX shared-memory region that the parent creates and its child
//! processes open by name: it carries the control block (readiness, results)
//! and, for the raw baselines, the words they ping-pong on.
//!
//! The name is unique per process and call (`/shmbus-bench-<pid>-<n>`,
//! [`REGION_PREFIX`] is defined in `cleanup`, which sweeps by it), the
//! creator unlinks it when dropped, and [`crate::cleanup`] unlinks it if the
//! run dies half-way, so `/dev/shm` is left as it was found.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::{fstat, Mode};
use nix::unistd::ftruncate;

use crate::cleanup::{self, Resource, REGION_PREFIX};

/// A mapped shared-memory region, zero-filled when created.
pub struct SharedRegion {
    name: String,
    ptr: NonNull<u8>,
    len: usize,
    owner: bool,
}

// SAFETY: the region is plain shared memory; every access to it from this
// crate goes through atomics (see `control.rs`), so sharing the mapping
// between threads is as safe as sharing it between processes.
unsafe impl Send for SharedRegion {}
// SAFETY: as above.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// Creates a new zero-filled region of at least `len` bytes.
    pub fn create(len: usize) -> Result<SharedRegion, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("/{REGION_PREFIX}{}-{n}", std::process::id());
        let fd = shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| {
            format!("cannot create shared memory {name}: {e} (is /dev/shm mounted and writable?)")
        })?;
        cleanup::register(Resource::ShmRegion(name.clone()));
        let len = len.max(1).next_multiple_of(page_size());
        let unlink_on_error = |e: String| {
            let _ = shm_unlink(name.as_str());
            cleanup::unregister(&Resource::ShmRegion(name.clone()));
            e
        };
        ftruncate(&fd, len as libc::off_t).map_err(|e| {
            unlink_on_error(format!(
                "cannot size shared memory {name} to {len} bytes: {e}"
            ))
        })?;
        let ptr = map(&fd, len).map_err(|e| unlink_on_error(format!("cannot map {name}: {e}")))?;
        Ok(SharedRegion {
            name,
            ptr,
            len,
            owner: true,
        })
    }

    /// Opens a region created by the parent (in a child process).
    pub fn open(name: &str) -> Result<SharedRegion, String> {
        let fd = shm_open(name, OFlag::O_RDWR, Mode::empty())
            .map_err(|e| format!("cannot open shared memory {name}: {e}"))?;
        let len = fstat(fd.as_raw_fd())
            .map_err(|e| format!("cannot stat {name}: {e}"))?
            .st_size as usize;
        let ptr = map(&fd, len).map_err(|e| format!("cannot map {name}: {e}"))?;
        Ok(SharedRegion {
            name: name.to_string(),
            ptr,
            len,
            owner: false,
        })
    }

    /// The `shm_open` name, to hand to a child.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Start of the mapping (page aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, a region is at least a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, and no
        // reference into it outlives `self` (accessors borrow `self`).
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
        if self.owner {
            let _ = shm_unlink(self.name.as_str());
            cleanup::unregister(&Resource::ShmRegion(self.name.clone()));
        }
    }
}

fn map(fd: &impl AsFd, len: usize) -> nix::Result<NonNull<u8>> {
    let len = NonZeroUsize::new(len).ok_or(nix::errno::Errno::EINVAL)?;
    // SAFETY: a fresh shared mapping of a shm object we hold open; the kernel
    // picks the address, so nothing existing is replaced.
    let ptr = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }?;
    Ok(ptr.cast())
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}
