//! Answering one request with a command, inetd style, for `shmbus serve
//! SERVICE -- CMD...`: the request's bytes on the command's stdin, its
//! stdout is the reply.
//!
//! One `poll` loop feeds stdin, reads stdout and stderr, so a command that
//! writes before it has read all its input cannot deadlock with us, and no
//! thread is needed. The reply is bounded: once stdout passes the service's
//! max reply size the command is killed and the call fails with both sizes.
//! The command's stderr is passed on to ours as it comes (it is the
//! operator's log) and its last line is kept for the caller's error message.
//!
//! Every command gets `PR_SET_PDEATHSIG(SIGKILL)`, so a `shmbus serve`
//! killed by SIGKILL does not leave its commands running.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// How often the stop flag is looked at while a command runs.
const STOP_CHECK: u16 = 100;

/// How much of the command's stderr is kept for the error message.
const STDERR_TAIL: usize = 4096;

/// What became of one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command succeeded: its stdout.
    Reply(Vec<u8>),
    /// It failed, or could not run: the message for the caller.
    Failed(String),
    /// A stop was requested while it ran; it was killed.
    Stopped,
}

/// Runs `cmd` (program and arguments) with `input` on its stdin; the reply
/// may be at most `max_reply` bytes. `stop` is polled while it runs.
pub fn answer(
    cmd: &[OsString],
    input: &[u8],
    max_reply: usize,
    stop: &dyn Fn() -> bool,
) -> Outcome {
    let name = cmd
        .first()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child = match spawn(cmd) {
        Ok(child) => child,
        Err(e) => return Outcome::Failed(format!("cannot run `{name}`: {e}")),
    };
    let outcome = exchange(&mut child, input, max_reply, stop);
    let (reply, tail) = match outcome {
        Ok(Exchanged::Done { reply, stderr_tail }) => (reply, stderr_tail),
        Ok(Exchanged::TooLarge) => {
            end(&mut child);
            return Outcome::Failed(format!(
                "the reply of `{name}` is over the service's max reply size of {max_reply} bytes"
            ));
        }
        Ok(Exchanged::Stopped) => {
            end(&mut child);
            return Outcome::Stopped;
        }
        Err(e) => {
            end(&mut child);
            return Outcome::Failed(format!("cannot talk to `{name}`: {e}"));
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if stop() => {
                end(&mut child);
                return Outcome::Stopped;
            }
            // Its output is closed; its exit is normally a moment away.
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Outcome::Failed(format!("cannot wait for `{name}`: {e}")),
        }
    };
    if status.success() {
        return Outcome::Reply(reply);
    }
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended with {status}"),
    };
    let last = String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    Outcome::Failed(format!("`{name}` {how}{last}"))
}

fn spawn(cmd: &[OsString]) -> io::Result<Child> {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| io::Error::other("no command given"))?;
    let parent = std::process::id();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            // Die with the thread that started us (our worker), so a
            // SIGKILLed `serve` leaves no command behind.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("shmbus serve is gone"));
            }
            Ok(())
        })
    };
    command.spawn()
}

/// Kills and reaps the command (it may have exited already).
fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

enum Exchanged {
    Done {
        reply: Vec<u8>,
        stderr_tail: Vec<u8>,
    },
    TooLarge,
    Stopped,
}

fn nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(raw, FcntlArg::F_GETFL)?);
    fcntl(raw, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Feeds `input` and reads stdout and stderr until both are closed.
fn exchange(
    child: &mut Child,
    input: &[u8],
    max_reply: usize,
    stop: &dyn Fn() -> bool,
) -> io::Result<Exchanged> {
    let mut stdin = child.stdin.take().filter(|_| !input.is_empty());
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    for fd in [
        stdin.as_ref().map(|f| f.as_fd()),
        stdout.as_ref().map(|f| f.as_fd()),
        stderr.as_ref().map(|f| f.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        nonblocking(&fd)?;
    }
    let mut written = 0;
    let mut reply = Vec::new();
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while stdout.is_some() || stderr.is_some() {
        if stop() {
            return Ok(Exchanged::Stopped);
        }
        let (ready_in, ready_out, ready_err) = {
            let mut fds = Vec::with_capacity(3);
            if let Some(f) = &stdin {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(f) = &stdout {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            if let Some(f) = &stderr {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(STOP_CHECK)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut ready = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()));
            (
                stdin.is_some() && ready.next().unwrap_or(false),
                stdout.is_some() && ready.next().unwrap_or(false),
                stderr.is_some() && ready.next().unwrap_or(false),
            )
        };
        if ready_in {
            if let Some(f) = stdin.as_mut() {
                match f.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // EPIPE: the command does not want (the rest of) its input.
                    Err(_) => written = input.len(),
                }
                if written == input.len() {
                    // Closing stdin is the end of the request for the command.
                    stdin = None;
                }
            }
        }
        if ready_out {
            if let Some(f) = stdout.as_mut() {
                match f.read(&mut buf) {
                    Ok(0) => stdout = None,
                    Ok(n) if reply.len() + n > max_reply => return Ok(Exchanged::TooLarge),
                    Ok(n) => reply.extend_from_slice(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if ready_err {
            if let Some(f) = stderr.as_mut() {
                match f.read(&mut buf) {
                    Ok(0) => stderr = None,
                    Ok(n) => {
                        // The operator's log: passed on as it comes.
                        let _ = io::stderr().write_all(&buf[..n]);
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(Exchanged::Done {
        reply,
        stderr_tail: tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn never() -> bool {
        false
    }

    #[test]
    fn stdin_to_stdout() {
        assert_eq!(
            answer(&cmd(&["tr", "a-z", "A-Z"]), b"hello", 100, &never),
            Outcome::Reply(b"HELLO".to_vec())
        );
        assert_eq!(
            answer(&cmd(&["cat"]), b"", 100, &never),
            Outcome::Reply(Vec::new())
        );
        // More than a pipe holds, both ways: no deadlock.
        let big: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        assert_eq!(
            answer(&cmd(&["cat"]), &big, 1 << 20, &never),
            Outcome::Reply(big)
        );
    }

    #[test]
    fn failures_say_why() {
        let Outcome::Failed(m) = answer(
            &cmd(&["sh", "-c", "echo 'bad input' >&2; exit 3"]),
            b"x",
            100,
            &never,
        ) else {
            panic!("must fail")
        };
        assert_eq!(m, "`sh` exited with status 3: bad input");
        let Outcome::Failed(m) = answer(&cmd(&["/nonexistent/cmd"]), b"x", 100, &never) else {
            panic!("must fail")
        };
        assert!(m.starts_with("cannot run `/nonexistent/cmd`: "), "{m}");
        let Outcome::Failed(m) =
            answer(&cmd(&["head", "-c", "1000", "/dev/zero"]), b"", 10, &never)
        else {
            panic!("must fail")
        };
        assert!(m.contains("max reply size of 10 bytes"), "{m}");
    }

    #[test]
    fn a_stop_kills_the_command() {
        assert_eq!(
            answer(&cmd(&["sleep", "30"]), b"", 10, &|| true),
            Outcome::Stopped
        );
    }
}
