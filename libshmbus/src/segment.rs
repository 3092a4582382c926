//! Named POSIX shared-memory segments: create (with all memory reserved up
//! front), open (read-write or read-only), unlink.
//!
//! Creation `fallocate`s the whole size on the tmpfs behind `/dev/shm`, so a
//! full `/dev/shm` is an `Error::NoSpace` at creation — and the half-made
//! file is unlinked — never a SIGBUS on first touch later. Modes are set with
//! `fchmod` after creation, so the umask cannot widen or narrow them.
//!
//! # Identity: a segment is trusted for who made it, not for its name
//!
//! `/dev/shm` is world-writable, so anyone may create a file under a name
//! that is not yet taken. Every open therefore checks, on the open
//! descriptor (`fstat`, so nothing can be swapped between the check and the
//! mapping), that the file is a regular file owned by the uid the caller
//! trusts with permission bits that uid would have set ([`Trust`]). A file
//! that fails is refused with [`Error::Untrusted`], which names the file,
//! its owner and the command that removes it. `/dev/shm` is sticky, so a
//! name that holds a file of the trusted uid keeps holding it until that
//! uid (or root) removes it.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

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
    #[cfg_attr(not(test), allow(dead_code))]
    writable: bool,
}

fn shm_path(name: &str) -> String {
    format!("/{name}")
}

/// Where POSIX shared memory keeps its objects on Linux (`shm_open` names
/// are files here): the one place the path is written.
pub const SHM_DIR: &str = "/dev/shm";

/// Where POSIX shared memory keeps segment `name` on Linux.
pub fn shm_file(name: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(name)
}

/// Modes `shmbusd` gives a topic's data segment: owner only, or opened to
/// the topic's group read-only or read-write (see the daemon's access rules).
pub const DATA_MODES: &[u32] = &[0o600, 0o640, 0o660];
/// Modes `shmbusd` gives a topic's subs segment.
pub const SUBS_MODES: &[u32] = &[0o600, 0o660];
/// The mode of a service's segment (services are owner-only).
pub const SERVICE_MODES: &[u32] = &[0o600];

/// Whom a segment must belong to, and which permission bits it may have,
/// for an open to trust it (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trust<'a> {
    /// The owner: the daemon's uid (learnt from `SO_PEERCRED`), or the
    /// caller's own for daemonless opens.
    pub uid: u32,
    /// Acceptable `st_mode & 0o7777` values.
    pub modes: &'a [u32],
}

/// A fresh random nonce for a new segment's header (never 0): it tells
/// one incarnation of a name from the next.
pub fn random_nonce() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is a valid 8-byte out buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), 8, 0) };
    let r = u64::from_ne_bytes(buf);
    if n == 8 && r != 0 {
        r
    } else {
        crate::clock::realtime_ns() ^ (u64::from(std::process::id()) << 32) | 1
    }
}

/// The uid this process acts as (its effective uid).
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

impl Trust<'_> {
    /// Checks the open file `file` (segment `name`) against this trust.
    fn check(&self, name: &str, file: &File) -> Result<()> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("fstat {name}"), e))?;
        let path = shm_file(name);
        let owner = meta.uid();
        let mode = meta.mode() & 0o7777;
        let why = if !meta.file_type().is_file() {
            Some("it is not a regular file".to_string())
        } else if owner != self.uid {
            Some(format!(
                "it is owned by uid {owner}, not by uid {}",
                self.uid
            ))
        } else if !self.modes.contains(&mode) {
            Some(format!(
                "its mode {mode:04o} is none that shmbus sets ({})",
                mode_list(self.modes)
            ))
        } else {
            None
        };
        match why {
            None => Ok(()),
            Some(why) => Err(Error::Untrusted {
                what: "segment",
                path: path.display().to_string(),
                why: format!(
                    "{why}; it is not this bus's: {}",
                    removal_hint(&path, owner)
                ),
            }),
        }
    }
}

fn mode_list(modes: &[u32]) -> String {
    let list: Vec<String> = modes.iter().map(|m| format!("{m:04o}")).collect();
    list.join(", ")
}

/// How to remove a file of `/dev/shm` that `owner` holds.
pub fn removal_hint(path: &std::path::Path, owner: u32) -> String {
    format!(
        "remove it with `rm {}` (as uid {owner} or root)",
        path.display()
    )
}

/// Owner and permission bits of segment `name` as it is now, if it exists
/// (`lstat`: a symbolic link is reported as itself).
pub fn owner_of(name: &str) -> Option<(u32, u32)> {
    let meta = std::fs::symlink_metadata(shm_file(name)).ok()?;
    Some((meta.uid(), meta.mode() & 0o7777))
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
            nix::errno::Errno::EEXIST => match owner_of(name) {
                // Someone else took the name first: say who, and how to
                // free it.
                Some((owner, _)) if owner != euid() => Error::Untrusted {
                    what: "segment",
                    path: shm_file(name).display().to_string(),
                    why: format!(
                        "the name is taken by uid {owner}, so this segment cannot be created; {}",
                        removal_hint(&shm_file(name), owner)
                    ),
                },
                _ => Error::Io {
                    context: format!("segment {name} already exists"),
                    source: std::io::Error::from_raw_os_error(e as i32),
                },
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
    /// file itself is opened `O_RDONLY`, so the kernel enforces it), after
    /// checking on the open descriptor that `trust` accepts the file: a
    /// foreign file is [`Error::Untrusted`] and is never mapped.
    pub fn open(name: &str, writable: bool, trust: &Trust<'_>) -> Result<Segment> {
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
        Segment::from_file(name, File::from(fd), writable, trust)
    }

    /// Maps segment `name` from an already open `file` (one the daemon
    /// passed over its socket), after the same checks as [`Segment::open`]:
    /// `trust` on the descriptor, then a sane size.
    pub fn from_file(name: &str, file: File, writable: bool, trust: &Trust<'_>) -> Result<Segment> {
        trust.check(name, &file)?;
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

    /// Whether the mapping is writable (the tests check it).
    #[cfg(test)]
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

    /// A new open file description of the same file, read-write: liveness
    /// locks taken through it are its own, distinct from this segment's
    /// (`liveness`), so it can carry an entry's token to another process.
    /// Reopened through `/proc/self/fd`, not by name, so it is the very file
    /// this segment maps even if the name was replaced meanwhile.
    pub fn reopen(&self) -> Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
            .map_err(|e| Error::io(format!("cannot reopen segment {}", self.name), e))
    }

    /// Owner uid and permission bits of the open file (`fstat`).
    pub fn owner_and_mode(&self) -> Result<(u32, u32)> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(format!("fstat {}", self.name), e))?;
        Ok((meta.uid(), meta.mode() & 0o7777))
    }

    /// Whether the name still leads to the file this segment mapped (not
    /// removed, nor replaced by another file under the same name).
    pub fn is_linked(&self) -> bool {
        self.is_linked_as(&self.name)
    }

    /// Whether segment name `name` leads to the file this segment mapped
    /// (for a segment created under a temporary name and then linked).
    pub fn is_linked_as(&self, name: &str) -> bool {
        let (Ok(now), Ok(ours)) = (
            std::fs::symlink_metadata(shm_file(name)),
            self.file.metadata(),
        ) else {
            return false;
        };
        (now.dev(), now.ino()) == (ours.dev(), ours.ino())
    }

    /// Gives the open file group `gid` (if any) and permission bits `mode`,
    /// through the descriptor (no path, so nothing can be swapped in).
    pub fn set_perms(&self, mode: u32, gid: Option<u32>) -> Result<()> {
        let fd = self.file.as_raw_fd();
        if let Some(gid) = gid {
            nix::unistd::fchown(fd, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(|e| {
                Error::errno(
                    format!("cannot give segment {} to group {gid}", self.name),
                    e,
                )
            })?;
        }
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))
            .map_err(|e| Error::errno(format!("cannot set mode {mode:04o} on {}", self.name), e))
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
    let dir =
        std::fs::read_dir(SHM_DIR).map_err(|e| Error::io(format!("cannot list {SHM_DIR}"), e))?;
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
        let mine = Trust {
            uid: euid(),
            modes: &[0o600],
        };
        let r = Segment::open(&n, false, &mine).unwrap();
        assert!(!r.writable());
        assert_eq!(r.header(101)[100], 7);
        let mode = std::fs::metadata(format!("/dev/shm/{n}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        assert!(Segment::create(&n, 8192, 0o600, None).is_err());
        // Another owner, or a mode shmbus never sets: refused, named.
        let theirs = Trust {
            uid: euid() + 1,
            modes: &[0o600],
        };
        let e = Segment::open(&n, false, &theirs).unwrap_err().to_string();
        assert!(e.contains(&format!("owned by uid {}", euid())), "{e}");
        assert!(e.contains(&format!("rm /dev/shm/{n}")), "{e}");
        let wide = Trust {
            uid: euid(),
            modes: &[0o640],
        };
        let e = Segment::open(&n, false, &wide).unwrap_err().to_string();
        assert!(
            e.contains("mode 0600 is none that shmbus sets (0640)"),
            "{e}"
        );
        Segment::unlink(&n).unwrap();
        assert!(Segment::open(&n, false, &mine).is_err());
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
