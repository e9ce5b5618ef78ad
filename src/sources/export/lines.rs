//! The lines of an export data file, read with bounds, so that a hostile
//! or broken file (a gzip bomb: megabytes that inflate to gigabytes of one
//! line, or of newlines) is refused after a bounded read instead of
//! exhausting memory or time.
//!
//! * one line holds at most [`MAX_LINE_BYTES`]: it is refused as soon as it
//!   grows past that, never buffered whole;
//! * a file inflates to at most [`max_inflated`]`(itemCount)`: its items'
//!   worst case plus [`FILE_SLACK_BYTES`];
//! * blank lines (which AWS never writes) take at most [`FILE_SLACK_BYTES`]
//!   in all, so a file of newlines is refused after a megabyte whatever its
//!   `itemCount`.
//!
//! The caller checks its deadline and Ctrl-C after every line, blank ones
//! included.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest data line read, in bytes (16 MiB). A DynamoDB item holds at
/// most 400 KB, counted as attribute names plus values; in DynamoDB JSON
/// the worst case is about 11.5 times that (a one-byte control-character
/// name escaped as `\u0001` with a `NULL` or `BOOL` value:
/// `"\u0001":{"NULL":true},` is 23 bytes for 2 counted), so about 4.6 MB
/// per image. An incremental-export line carries two images (old and new)
/// and its keys: about 9.2 MB at worst. 16 MiB keeps a margin over that.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Bytes a data file may hold beyond its items' lines (1 MiB): the room
/// for blank lines and a trailing newline in hand-made files (AWS writes
/// none). Also the most that blank lines may take in all.
pub const FILE_SLACK_BYTES: u64 = 1024 * 1024;

/// The most a data file of `item_count` items may inflate to: every line
/// at [`MAX_LINE_BYTES`] (and its newline), plus [`FILE_SLACK_BYTES`].
pub fn max_inflated(item_count: u64) -> u64 {
    item_count
        .saturating_mul(MAX_LINE_BYTES as u64 + 1)
        .saturating_add(FILE_SLACK_BYTES)
}

/// What bounds one file's reading.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of one line, without its newline.
    pub line: usize,
    /// Inflated bytes of the whole file.
    pub total: u64,
    /// Bytes of blank (whitespace-only) lines, newlines included.
    pub blank: u64,
}

impl Limits {
    /// The limits of a data file whose manifest line says `item_count`.
    pub fn for_items(item_count: u64) -> Limits {
        Limits {
            line: MAX_LINE_BYTES,
            total: max_inflated(item_count),
            blank: FILE_SLACK_BYTES,
        }
    }
}

/// Why reading a data file stopped.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error(
        "line {line} is longer than {limit} bytes, the cap on one export line \
         (a DynamoDB item is at most 400 KB; MAX_LINE_BYTES)"
    )]
    LineTooLong { line: u64, limit: usize },
    #[error(
        "it inflates past {limit} bytes, the cap for its itemCount of {items} \
         (itemCount × MAX_LINE_BYTES + FILE_SLACK_BYTES)"
    )]
    FileTooLarge { limit: u64, items: u64 },
    #[error(
        "its blank lines pass {limit} bytes, the cap on blank lines in a data \
         file (FILE_SLACK_BYTES; AWS writes none)"
    )]
    TooManyBlankLines { limit: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Lines of bytes from `inner`, within `limits`.
pub struct BoundedLines<R> {
    inner: R,
    limits: Limits,
    items: u64,
    /// Lines returned so far.
    line_no: u64,
    total: u64,
    blank: u64,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    /// `items`: the manifest's `itemCount`, named in errors.
    pub fn new(inner: R, limits: Limits, items: u64) -> Self {
        BoundedLines {
            inner,
            limits,
            items,
            line_no: 0,
            total: 0,
            blank: 0,
        }
    }

    /// The next line, without its `\n` (or `\r\n`), into `buf` (cleared
    /// first); `false` at the end of the input. A line is read chunk by
    /// chunk and refused as soon as it passes the line cap, so `buf` never
    /// grows past `limits.line` plus one chunk of the inner buffer.
    pub async fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<bool, LineError> {
        buf.clear();
        let mut read_any = false;
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if !read_any {
                    return Ok(false);
                }
                break;
            }
            read_any = true;
            let (chunk, used, ends) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if buf.len() + chunk.len() > self.limits.line {
                return Err(LineError::LineTooLong {
                    line: self.line_no + 1,
                    limit: self.limits.line,
                });
            }
            buf.extend_from_slice(chunk);
            self.inner.consume(used);
            self.total += used as u64;
            if self.total > self.limits.total {
                return Err(LineError::FileTooLarge {
                    limit: self.limits.total,
                    items: self.items,
                });
            }
            if ends {
                break;
            }
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            self.blank += buf.len() as u64 + 1;
            if self.blank > self.limits.blank {
                return Err(LineError::TooManyBlankLines {
                    limit: self.limits.blank,
                });
            }
        }
        Ok(true)
    }

    /// The reader underneath (to drain what follows the lines).
    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    fn limits(line: usize, total: u64, blank: u64) -> Limits {
        Limits { line, total, blank }
    }

    async fn all_lines(text: &[u8], l: Limits) -> Result<Vec<String>, LineError> {
        let mut r = BoundedLines::new(BufReader::with_capacity(4, text), l, 0);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while r.next_line(&mut buf).await? {
            out.push(String::from_utf8_lossy(&buf).into_owned());
        }
        Ok(out)
    }

    #[tokio::test]
    async fn lines_as_tokio_reads_them() {
        let big = limits(100, 1000, 100);
        let got = all_lines(b"a\r\nbb\n\nccc", big).await.unwrap();
        assert_eq!(got, ["a", "bb", "", "ccc"]);
        assert_eq!(all_lines(b"a\n", big).await.unwrap(), ["a"]);
        assert!(all_lines(b"", big).await.unwrap().is_empty());
        // A line of exactly the cap is read.
        let ten = [b'x'; 10];
        assert_eq!(all_lines(&ten, limits(10, 100, 0)).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn each_cap_refuses() {
        let e = all_lines(b"ok\n0123456789A\n", limits(10, 1000, 100))
            .await
            .unwrap_err();
        assert!(
            matches!(e, LineError::LineTooLong { line: 2, limit: 10 }),
            "{e}"
        );
        let e = all_lines(b"0123\n0123\n0123\n", limits(10, 12, 100))
            .await
            .unwrap_err();
        assert!(
            matches!(e, LineError::FileTooLarge { limit: 12, .. }),
            "{e}"
        );
        // Blank lines of 1 + 2 + 1 + 1 bytes, newlines included.
        let blank = b"a\n\n \n\n\n";
        assert_eq!(
            all_lines(blank, limits(10, 1000, 5)).await.unwrap().len(),
            5
        );
        let e = all_lines(blank, limits(10, 1000, 4)).await.unwrap_err();
        assert!(
            matches!(e, LineError::TooManyBlankLines { limit: 4 }),
            "{e}"
        );
    }

    /// An endless line (a gzip bomb of zeros, inflating without end) is
    /// refused after the cap, having held at most the cap and one chunk:
    /// it is never buffered whole (an unbounded read would never return).
    #[tokio::test]
    async fn an_endless_line_is_refused_within_the_cap() {
        let zeros = tokio::io::repeat(0);
        let mut counted = Counted {
            inner: zeros,
            read: 0,
        };
        let mut r = BoundedLines::new(
            BufReader::with_capacity(64 * 1024, &mut counted),
            Limits::for_items(1000),
            1000,
        );
        let mut buf = Vec::new();
        let e = r.next_line(&mut buf).await.unwrap_err();
        assert!(matches!(e, LineError::LineTooLong { line: 1, .. }), "{e}");
        assert!(e.to_string().contains(&MAX_LINE_BYTES.to_string()), "{e}");
        assert!(buf.len() <= MAX_LINE_BYTES, "{}", buf.len());
        assert!(buf.capacity() <= 2 * MAX_LINE_BYTES, "{}", buf.capacity());
        drop(r);
        let read = counted.read;
        assert!(read <= (MAX_LINE_BYTES + 64 * 1024) as u64, "{read}");
        // And an endless run of newlines, within the blank-line cap.
        let mut newlines = BoundedLines::new(
            BufReader::new(tokio::io::repeat(b'\n')),
            Limits::for_items(u64::MAX),
            u64::MAX,
        );
        let mut n = 0u64;
        let e = loop {
            match newlines.next_line(&mut buf).await {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(e, LineError::TooManyBlankLines { .. }), "{e}");
        assert_eq!(n, FILE_SLACK_BYTES);
    }

    /// Counts the bytes read through it.
    struct Counted<R> {
        inner: R,
        read: u64,
    }

    impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
            let n = buf.filled().len() - before;
            self.read += n as u64;
            polled
        }
    }
}
