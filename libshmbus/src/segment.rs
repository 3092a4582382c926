//! Named POSIX shared-memory segments: create (with all memory reserved up
//! front), open (read-write or read-only), unlink.
//!
//! Creation `fallocate`s the whole size on the tmpfs behind `/dev/shm`, so a
//! full `/dev/shm` is an `Error::NoSpace` at creation — and the half-made
//! file is unlinked — never a SIGBUS on first touch later. Modes are set with
//! `fchmod` after creation, so the umask cannot widen or narrow them.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// A mapped shared-memory segment. The mapping lives as long as the value;
/// the open file description carries the process's liveness locks.
#[derive(Debug)]
pub struct Segment {
    name: String,
    file: File,
    /// Declared before `map` so that it unregisters before the unmap.
    guard: crate::sigbus::Guard,
    map: MmapRaw,
    writable: bool,
}

fn shm_path(name: &str) -> String {
    format!("/{name}")
}

impl Segment {
    /// Creates segment `name` of `size` bytes (zero-filled, fully reserved)
    /// with permission `mode` and, if given, owner group `gid`. Fails if it
    /// exists. On any failure nothing is left behind.
    pub fn create(name: &str, size: usize, mode: u32, gid: Option<u32>) -> Result<Segment> {
        let fd = nix::sys::mman::shm_open(
            shm_path(name).as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| match e {
            nix::errno::Errno::EEXIST => Error::Io {
                context: format!("segment {name} already exists"),
                source: std::io::Error::from_raw_os_error(e as i32),
            },
            e => Error::errno(format!("cannot create segment {name} in /dev/shm"), e),
        })?;
        let undo = |err: Error| {
            let _ = Segment::unlink(name);
            err
        };
        let file = File::from(fd);
        // The umask applied at shm_open; set the mode we mean.
        nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode))
            .map_err(|e| undo(Error::errno(format!("fchmod {name}"), e)))?;
        if let Some(gid) = gid {
            nix::unistd::fchown(
                file.as_raw_fd(),
                None,
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| undo(Error::errno(format!("fchown {name} to group {gid}"), e)))?;
        }
        // SAFETY: plain syscall on an fd we own.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
        if rc != 0 {
            return Err(undo(if rc == libc::ENOSPC || rc == libc::EFBIG {
                Error::NoSpace {
                    segment: name.to_string(),
                    bytes: size as u64,
                }
            } else {
                Error::io(
                    format!("cannot reserve {size} bytes for segment {name}"),
                    std::io::Error::from_raw_os_error(rc),
                )
            }));
        }
        let map = MmapOptions::new()
            .len(size)
            .map_raw(&file)
            .map_err(|e| undo(Error::io(format!("mmap {name}"), e)))?;
        Ok(Segment {
            name: name.to_string(),
            file,
            guard: crate::sigbus::guard(map.as_mut_ptr(), map.len()),
            map,
            writable: true,
        })
    }

    /// Opens and maps an existing segment, read-write or read-only (then the
    /// file itself is opened `O_RDONLY`, so the kernel enforces it).
    pub fn open(name: &str, writable: bool) -> Result<Segment> {
        let flags = if writable {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        } | OFlag::O_CLOEXEC;
        let fd: OwnedFd = nix::sys::mman::shm_open(shm_path(name).as_str(), flags, Mode::empty())
            .map_err(|e| match e {
            nix::errno::Errno::ENOENT => Error::Io {
                context: format!(
                    "segment {name} does not exist (topic removed, or the bus was restarted)"
                ),
                source: std::io::Error::from_raw_os_error(e as i32),
            },
            nix::errno::Errno::EACCES => Error::Denied(format!(
                "cannot open segment {name} {}: the topic's permissions do not allow it",
                if writable { "read-write" } else { "read-only" }
            )),
            e => Error::errno(format!("cannot open segment {name}"), e),
        })?;
        let file = File::from(fd);
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("fstat {name}"), e))?
            .len();
        if size == 0 || size > isize::MAX as u64 {
            return Err(Error::corrupt(
                name,
                format!("file size {size} is not a segment"),
            ));
        }
        let mut opts = MmapOptions::new();
        opts.len(size as usize);
        let map = if writable {
            opts.map_raw(&file)
        } else {
            opts.map_raw_read_only(&file)
        }
        .map_err(|e| Error::io(format!("mmap {name}"), e))?;
        Ok(Segment {
            name: name.to_string(),
            file,
            guard: crate::sigbus::guard(map.as_mut_ptr(), map.len()),
            map,
            writable,
        })
    }

    /// Removes segment `name` from /dev/shm (mappings stay valid).
    pub fn unlink(name: &str) -> Result<()> {
        nix::sys::mman::shm_unlink(shm_path(name).as_str())
            .map_err(|e| Error::errno(format!("cannot remove segment {name}"), e))
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of the mapping.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty (never, for a valid segment).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Whether the mapping is writable.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Whether another process truncated the file under the mapping (a
    /// touched page past its end was replaced by zeros: see `sigbus`). The
    /// contents are no longer the segment's; callers report `Corrupt`.
    pub fn is_damaged(&self) -> bool {
        self.guard.is_damaged()
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// The open file (for liveness locks).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A private copy of the first `n` bytes of the mapping (fewer if it is
    /// shorter), for validating a header at open. Other processes may be
    /// writing the segment, so it is copied with atomic loads
    /// (`crate::racy`) and never borrowed in place.
    pub fn header(&self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n.min(self.len())];
        // SAFETY: `out.len() ≤ len`, the mapping's length, which lives as
        // long as `self`; `out` is private memory; nothing in this process
        // writes the mapping non-atomically during the copy (writers in
        // other processes are what the atomic copy is for).
        unsafe { crate::racy::atomic_read_bytes(self.as_ptr(), &mut out) };
        out
    }
}

/// Names of files in /dev/shm starting with `prefix`.
pub fn list_shm(prefix: &str) -> Result<Vec<String>> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|e| Error::io("cannot list /dev/shm", e))?;
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        format!("shmbus.unit-{}-{tag}.x.data", std::process::id())
    }

    #[test]
    fn create_open_unlink() {
        let n = name("a");
        let s = Segment::create(&n, 8192, 0o600, None).unwrap();
        assert_eq!(s.len(), 8192);
        // SAFETY: we own the fresh segment; nobody else writes it.
        unsafe { *s.as_ptr().add(100) = 7 };
        let r = Segment::open(&n, false).unwrap();
        assert!(!r.writable());
        assert_eq!(r.header(101)[100], 7);
        let mode = std::fs::metadata(format!("/dev/shm/{n}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        assert!(Segment::create(&n, 8192, 0o600, None).is_err());
        Segment::unlink(&n).unwrap();
        assert!(Segment::open(&n, false).is_err());
    }

    #[test]
    fn oversized_creation_is_a_clean_error() {
        let n = name("big");
        // Far beyond what /dev/shm (bounded by RAM) can hold.
        let err = Segment::create(&n, 1 << 50, 0o600, None).unwrap_err();
        assert!(matches!(err, Error::NoSpace { .. }), "{err}");
        assert!(!std::path::Path::new(&format!("/dev/shm/{n}")).exists());
    }
}
