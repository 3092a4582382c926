//! Reading messages for `shmbus pub`: one per line of stdin, or one whole
//! file, with memory bounded by the topic's max message size.
//!
//! A message over the limit is not kept: only its length is counted, so the
//! error can give both sizes (SPEC §7) without reading a huge line into
//! memory. Reads are buffered (`BufRead`), so streaming `producer | shmbus
//! pub t` costs one `read` per buffer, not per message. A read interrupted by
//! Ctrl-C returns `ErrorKind::Interrupted` when `stop` says so, instead of
//! being retried the way `BufRead::read_until` does.

use std::io::{self, BufRead};

/// One message read: its full length; `buf` holds its bytes when the length
/// is within the limit.
#[derive(Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Length of the message in bytes, even when it was over the limit
    /// (then counted up to [`COUNT_PAST_LIMIT`] past it: see `capped`).
    pub len: usize,
    /// Whether reading stopped at the counting bound: the message is at
    /// least `len` bytes (an endless input such as `/dev/zero`).
    pub capped: bool,
}

/// How far past the limit an oversize message is still counted, so that the
/// error can give its size; an endless input stops here.
pub const COUNT_PAST_LIMIT: usize = 64 << 20;

/// Reads up to the next `delim` (not included) or to the end of input when
/// `delim` is `None`. Keeps at most `limit` bytes in `buf` (cleared first).
/// Returns `None` at the end of input when nothing was read; a last line
/// without a newline is still a message.
pub fn read_message(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
    delim: Option<u8>,
    stop: impl Fn() -> bool,
) -> io::Result<Option<Incoming>> {
    buf.clear();
    let mut len = 0usize;
    let mut any = false;
    loop {
        let available = match r.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if stop() {
                    return Err(e);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((any || delim.is_none()).then_some(Incoming { len, capped: false }));
        }
        any = true;
        let (take, done) = match delim.and_then(|d| available.iter().position(|&b| b == d)) {
            Some(at) => (at, true),
            None => (available.len(), false),
        };
        // Keep what fits; past the limit only the count goes on.
        let room = limit.saturating_sub(buf.len()).min(take);
        buf.extend_from_slice(&available[..room]);
        len = len.saturating_add(take);
        r.consume(take + usize::from(done));
        if done {
            return Ok(Some(Incoming { len, capped: false }));
        }
        if len > limit.saturating_add(COUNT_PAST_LIMIT) {
            return Ok(Some(Incoming { len, capped: true }));
        }
        // Reads of a fast endless source are never interrupted: look at the
        // stop flag (Ctrl-C, SIGTERM) between chunks too.
        if stop() {
            return Err(io::ErrorKind::Interrupted.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn all_lines(input: &[u8], limit: usize, capacity: usize) -> Vec<(usize, Vec<u8>)> {
        let mut r = BufReader::with_capacity(capacity, Cursor::new(input.to_vec()));
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(read) = read_message(&mut r, &mut buf, limit, Some(b'\n'), || false).unwrap()
        {
            let kept = if read.len <= limit {
                buf.clone()
            } else {
                Vec::new()
            };
            out.push((read.len, kept));
        }
        out
    }

    #[test]
    fn lines_without_their_newline() {
        let got = all_lines(b"one\ntwo\n\nlast", 100, 3);
        let want: Vec<(usize, Vec<u8>)> = vec![
            (3, b"one".to_vec()),
            (3, b"two".to_vec()),
            (0, Vec::new()),
            (4, b"last".to_vec()),
        ];
        assert_eq!(got, want);
        assert_eq!(all_lines(b"", 100, 8), vec![]);
        assert_eq!(all_lines(b"\n", 100, 8), vec![(0, Vec::new())]);
        assert_eq!(all_lines(b"a\r\n", 100, 8), vec![(2, b"a\r".to_vec())]);
    }

    #[test]
    fn binary_bytes_pass_through() {
        let mut line: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
        line.push(b'\n');
        let got = all_lines(&line, 1000, 7);
        assert_eq!(got, vec![(255, line[..255].to_vec())]);
    }

    #[test]
    fn over_the_limit_is_counted_not_kept() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nok\n");
        for capacity in [1, 5, 64, 8192, 20_000] {
            let mut r = BufReader::with_capacity(capacity, Cursor::new(input.clone()));
            let mut buf = Vec::new();
            let big = read_message(&mut r, &mut buf, 16, Some(b'\n'), || false)
                .unwrap()
                .unwrap();
            assert_eq!(big.len, 10_000);
            assert!(big.len > 16);
            assert!(buf.len() <= 16, "kept {} bytes", buf.len());
            let ok = read_message(&mut r, &mut buf, 16, Some(b'\n'), || false)
                .unwrap()
                .unwrap();
            assert_eq!((ok.len, buf.as_slice()), (2, &b"ok"[..]));
            assert_eq!(
                read_message(&mut r, &mut buf, 16, Some(b'\n'), || false).unwrap(),
                None
            );
        }
    }

    #[test]
    fn exactly_the_limit_fits() {
        let got = all_lines(b"abcd\nabcde\n", 4, 2);
        assert_eq!(got, vec![(4, b"abcd".to_vec()), (5, Vec::new())]);
    }

    #[test]
    fn whole_input_as_one_message() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mut r = BufReader::with_capacity(100, Cursor::new(data.clone()));
        let mut buf = Vec::new();
        let read = read_message(&mut r, &mut buf, 4096, None, || false)
            .unwrap()
            .unwrap();
        assert_eq!((read.len, &buf), (3000, &data));
        // An empty file is one empty message.
        let mut r = Cursor::new(Vec::new());
        let read = read_message(&mut r, &mut buf, 4096, None, || false)
            .unwrap()
            .unwrap();
        assert_eq!((read.len, buf.len()), (0, 0));
    }

    /// A reader that fails with EINTR once before each chunk.
    struct Eintr<R> {
        inner: R,
        fail_next: bool,
    }

    impl<R: io::Read> io::Read for Eintr<R> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.fail_next = !self.fail_next;
            if self.fail_next {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            self.inner.read(out)
        }
    }

    #[test]
    fn interrupted_reads_retry_unless_stopping() {
        let src = || Eintr {
            inner: Cursor::new(b"ab\ncd\n".to_vec()),
            fail_next: false,
        };
        let mut r = BufReader::with_capacity(2, src());
        let mut buf = Vec::new();
        let first = read_message(&mut r, &mut buf, 10, Some(b'\n'), || false).unwrap();
        assert_eq!(
            (first, buf.as_slice()),
            (
                Some(Incoming {
                    len: 2,
                    capped: false
                }),
                &b"ab"[..]
            )
        );

        let mut r = BufReader::with_capacity(2, src());
        let err = read_message(&mut r, &mut buf, 10, Some(b'\n'), || true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    }
}
