//! One daemon per bus: an exclusive `flock` on `<bus>.lock` in the runtime
//! directory, holding the owner's pid as text.
//!
//! The kernel drops the lock when the process dies, however it dies, so a
//! stale file never blocks a new daemon. Removing the file on shutdown races
//! with a daemon that opened it just before: after locking we check that the
//! path still names the file we locked, and start over if not. The file is
//! mode 0600 whatever the umask.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; its pid when the file says so.
    Held(Option<u32>),
    /// The file could not be opened, locked or written.
    Io(String),
}

/// The held lock; dropping it releases it (the file stays).
#[derive(Debug)]
pub struct BusLock {
    file: File,
    path: PathBuf,
}

impl BusLock {
    /// Takes the lock at `path` without waiting, and writes our pid into it.
    pub fn acquire(path: &Path) -> Result<BusLock, LockError> {
        let io = |what: &str, e: std::io::Error| {
            LockError::Io(format!("cannot {what} lock file {}: {e}", path.display()))
        };
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| io("open", e))?;
            // SAFETY: flock on a file descriptor we own; no memory involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Err(LockError::Held(read_pid(&mut file)));
                }
                return Err(io("lock", err));
            }
            // The previous owner may have unlinked the file between our open
            // and our flock; then we locked an orphan and must retry.
            let ours = file.metadata().map_err(|e| io("stat", e))?;
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("stat", e)),
            }
            // The umask applied at creation: set the mode we mean, so a
            // umask of 777 cannot leave a file the next daemon may not open.
            if ours.mode() & 0o7777 != 0o600 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io("chmod", e))?;
            }
            file.set_len(0).map_err(|e| io("truncate", e))?;
            file.rewind().map_err(|e| io("write", e))?;
            writeln!(file, "{}", std::process::id()).map_err(|e| io("write", e))?;
            return Ok(BusLock {
                file,
                path: path.to_path_buf(),
            });
        }
    }

    /// Removes the lock file, then releases the lock (in that order, so no
    /// one can lock the old file after we let go).
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove lock file {}: {e}", self.path.display());
        }
        drop(self.file);
    }
}

/// The pid written in a lock file, if it holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_pid() {
        let dir = std::env::temp_dir().join(format!("shmbusd-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.lock");
        let lock = BusLock::acquire(&path).unwrap();
        match BusLock::acquire(&path) {
            Err(LockError::Held(Some(pid))) => assert_eq!(pid, std::process::id()),
            other => panic!("expected Held, got {other:?}"),
        }
        lock.remove();
        assert!(!path.exists());
        let again = BusLock::acquire(&path).unwrap();
        drop(again);
        // Released on drop, the file stays and can be locked again.
        BusLock::acquire(&path).unwrap().remove();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
