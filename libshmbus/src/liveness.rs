//! Liveness tokens: an open-file-description lock (`fcntl(F_OFD_SETLK)`) on
//! one byte of a segment file, which the kernel releases when the process
//! holding it dies — however it dies.
//!
//! Three roles:
//! * the **monitored** client takes the lock on its entry's byte when it
//!   attaches and holds it for as long as its segment file is open;
//! * the **watcher** (the daemon's reaper, or a client looking for a free
//!   entry) tries to take the same lock: success proves the holder is gone,
//!   because a live holder's lock would conflict;
//! * the **cleaner** is whoever won that lock: it reclaims the entry while
//!   holding it, so no new client can take the entry mid-cleanup.
//!
//! Pids are recorded for humans only: they are reused, so they prove
//! nothing. Heartbeats are not used: a loaded machine would miss them and
//! declare the living dead. OFD locks (unlike classic POSIX locks) belong to
//! the open file description, not the process, so closing an unrelated
//! descriptor of the same file does not drop them; a `fork`ed child that
//! inherits the descriptor does keep the token alive (segments are opened
//! `O_CLOEXEC`, so `exec` does not).

use std::fs::File;
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};

fn lock_op(
    file: &File,
    offset: usize,
    cmd: libc::c_int,
    kind: libc::c_short,
) -> std::io::Result<libc::flock> {
    // SAFETY: zeroed flock is a valid value; l_pid must be 0 for OFD locks.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    // SAFETY: `fl` is a valid flock for the duration of the call; the fd is open.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fl)
    }
}

/// Tries to take the token at `offset` of `file` without waiting. `Ok(false)`
/// if another open file description holds it (its owner is alive).
pub fn try_acquire(file: &File, offset: usize) -> Result<bool> {
    match lock_op(
        file,
        offset,
        libc::F_OFD_SETLK,
        libc::F_WRLCK as libc::c_short,
    ) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(Error::io("liveness lock (fcntl F_OFD_SETLK)", e)),
    }
}

/// Releases the token at `offset` (closing the file releases it too).
pub fn release(file: &File, offset: usize) {
    let _ = lock_op(
        file,
        offset,
        libc::F_OFD_SETLK,
        libc::F_UNLCK as libc::c_short,
    );
}

/// Whether some other open file description holds the token at `offset`.
pub fn is_held(file: &File, offset: usize) -> Result<bool> {
    let fl = lock_op(
        file,
        offset,
        libc::F_OFD_GETLK,
        libc::F_WRLCK as libc::c_short,
    )
    .map_err(|e| Error::io("liveness probe (fcntl F_OFD_GETLK)", e))?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Segment;

    #[test]
    fn token_dies_with_its_process() {
        let name = format!("shmbus.unit-{}-live.x.subs", std::process::id());
        let seg = Segment::create(&name, 4096, 0o600, None).unwrap();
        let mine = crate::segment::Trust {
            uid: crate::segment::euid(),
            modes: &[0o600],
        };
        let watcher = Segment::open(&name, true, &mine).unwrap();
        // The monitored role's own open file description, made before the
        // fork so the child does not allocate; the parent closes its copy.
        let own = Segment::open(&name, true, &mine).unwrap();
        // SAFETY: the child only calls fcntl, writes shared memory and
        // pauses (async-signal-safe) until it is killed.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = try_acquire(own.file(), 7).unwrap_or(false);
                let byte = [if ok { 1u8 } else { 0 }];
                // SAFETY: writing one byte into our own mapping.
                unsafe { *own.as_ptr().add(100) = byte[0] + 1 };
                loop {
                    nix::unistd::pause();
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(own);
                // SAFETY: byte 100 of our own mapping, written by the child.
                let flag = || unsafe { std::ptr::read_volatile(seg.as_ptr().add(100)) };
                while flag() == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                assert_eq!(flag(), 2, "child took the token");
                assert!(is_held(watcher.file(), 7).unwrap());
                assert!(!try_acquire(watcher.file(), 7).unwrap());
                nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert!(!is_held(watcher.file(), 7).unwrap());
                assert!(try_acquire(watcher.file(), 7).unwrap());
                // Now held by `watcher`'s description: another one conflicts.
                assert!(!try_acquire(seg.file(), 7).unwrap());
                release(watcher.file(), 7);
                assert!(try_acquire(seg.file(), 7).unwrap());
            }
        }
        Segment::unlink(&name).unwrap();
    }
}
