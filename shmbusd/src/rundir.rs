//! The runtime directory (control socket and lock file) and the socket file
//! in it: created private, refused when someone else could tamper with them.
//!
//! The directory is created mode 0700. If it exists it must belong to the
//! daemon's user and be writable by nobody else, or another user could
//! replace the socket and impersonate the daemon. When the config opens the
//! bus to a group, the directory gets that group with search permission
//! (0710) and the socket gets group read-write (0660): connecting to a Unix
//! socket needs write permission on it.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use mio::net::UnixListener;
use nix::unistd::{Gid, Uid};

use crate::access::Group;

/// Creates (if needed) and checks the runtime directory, then applies the
/// socket group's permissions to it.
///
/// Every mode is set explicitly rather than left to the umask: a umask of
/// 000 must not open the directory to others, and one of 077 or 777 must not
/// lock the daemon out of what it creates.
pub fn prepare(dir: &Path, group: Option<&Group>) -> Result<(), String> {
    let choose = "choose another with --runtime-dir (or SHMBUS_RUNTIME_DIR)";
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_parents(dir, parent, choose)?;
        }
    }
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            tracing::debug!("created runtime directory {}", dir.display());
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(cannot_create(dir, e, choose)),
    };
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot inspect runtime directory {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        let what = if meta.file_type().is_symlink() {
            "a symbolic link"
        } else {
            "not a directory"
        };
        return Err(format!(
            "runtime directory {} is {what}: {choose}",
            dir.display()
        ));
    }
    let me = Uid::effective().as_raw();
    if meta.uid() != me {
        // Whoever owns it could replace our socket and impersonate the
        // daemon to every client.
        return Err(format!(
            "runtime directory {} belongs to uid {}, not to shmbusd's uid {me}: remove it or {choose}",
            dir.display(),
            meta.uid()
        ));
    }
    let mut mode = meta.mode() & 0o7777;
    if created && mode != 0o700 {
        // A umask such as 077 or 777 narrowed it (a 0000 directory would
        // lock a non-root daemon out of its own socket): set it.
        set_mode(dir, 0o700)?;
        mode = 0o700;
    }
    if mode & 0o022 != 0 {
        let who = if mode & 0o002 != 0 {
            "others"
        } else {
            "its group"
        };
        return Err(format!(
            "runtime directory {d} is writable by {who} (mode {mode:04o}): fix with `chmod 700 {d}` or {choose}",
            d = dir.display()
        ));
    }
    if let Some(g) = group {
        nix::unistd::chown(dir, None, Some(Gid::from_raw(g.gid))).map_err(|e| {
            format!(
                "cannot give runtime directory {} to group `{}`: {e}",
                dir.display(),
                g.name
            )
        })?;
        set_mode(dir, (mode | 0o010) & !0o007)?;
    }
    Ok(())
}

/// Creates the missing parents of the runtime directory `dir`, outermost
/// first, each mode 0755 whatever the umask: they hold nothing secret, a
/// umask of 000 must not make them writable by all, and one of 777 must not
/// make them impassable.
fn create_parents(dir: &Path, parent: &Path, choose: &str) -> Result<(), String> {
    let mut missing: Vec<&Path> = parent
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
        .collect();
    missing.reverse();
    for p in missing {
        match std::fs::DirBuilder::new().mode(0o755).create(p) {
            Ok(()) => set_mode(p, 0o755)?,
            // Made by someone else meanwhile: checked like any parent.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(cannot_create(dir, e, choose)),
        }
    }
    Ok(())
}

/// The error for a runtime directory that could not be created: names the
/// ancestor in the way when one is not a directory (`--runtime-dir
/// some-file/run`), which the bare `ENOTDIR` would not.
fn cannot_create(dir: &Path, e: std::io::Error, choose: &str) -> String {
    let blocker = dir
        .ancestors()
        .skip(1)
        .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
    match blocker {
        Some(b) => format!(
            "cannot create runtime directory {}: {} is not a directory: {choose}",
            dir.display(),
            b.display()
        ),
        None => format!(
            "cannot create runtime directory {}: {e}: {choose}",
            dir.display()
        ),
    }
}

/// Binds the control socket at `path`, replacing a stale one (the caller
/// holds the bus lock, so no live daemon owns it), and sets its permissions.
pub fn bind_socket(path: &Path, group: Option<&Group>) -> Result<UnixListener, String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket: remove it or choose another --runtime-dir",
                path.display()
            ))
        }
        Err(_) => {}
    }
    // Owner-only from the start: no window in which others could connect
    // before the chmod below.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    apply_socket_perms(path, group)?;
    Ok(listener)
}

/// Sets the socket's group and mode for `group` (0660), or owner-only
/// (0600) without one. Also used on reload.
pub fn apply_socket_perms(path: &Path, group: Option<&Group>) -> Result<(), String> {
    match group {
        Some(g) => {
            nix::unistd::chown(path, None, Some(Gid::from_raw(g.gid))).map_err(|e| {
                format!(
                    "cannot give socket {} to group `{}`: {e}",
                    path.display(),
                    g.name
                )
            })?;
            set_mode(path, 0o660)
        }
        None => set_mode(path, 0o600),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot chmod {:o} {}: {e}", mode, path.display()))
}

/// Removes the socket file if it is there.
pub fn remove_socket(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove socket {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shmbusd-rundir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn created_private_and_refused_when_open_to_others() {
        let base = scratch("a");
        let dir = base.join("run");
        prepare(&dir, None).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);

        set_mode(&dir, 0o777).unwrap();
        let e = prepare(&dir, None).unwrap_err();
        assert!(e.contains("writable by others (mode 0777)"), "{e}");
        assert!(e.contains("chmod 700"), "{e}");
        set_mode(&dir, 0o770).unwrap();
        let e = prepare(&dir, None).unwrap_err();
        assert!(e.contains("writable by its group (mode 0770)"), "{e}");

        set_mode(&dir, 0o700).unwrap();
        let sock = dir.join("b.sock");
        let l = bind_socket(&sock, None).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(l);
        // A stale socket is replaced.
        drop(bind_socket(&sock, None).unwrap());
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_file_in_place_of_the_socket_is_refused() {
        let base = scratch("b");
        prepare(&base, None).unwrap();
        let sock = base.join("b.sock");
        std::fs::write(&sock, b"x").unwrap();
        let e = bind_socket(&sock, None).unwrap_err();
        assert!(e.contains("not a socket"), "{e}");
        std::fs::remove_dir_all(base).unwrap();
    }
}
