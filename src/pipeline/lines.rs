//! A child's output read as lines, as much as the daemon can hold: a line
//! longer than `MAX_LINE` is cut there (the rest of it skipped), and bytes
//! that are not UTF-8 are read as U+FFFD, so that neither a program that
//! prints without newlines nor a file name in another encoding ends a run
//! in error or fills the daemon's memory. yt-dlp's lines with our templates
//! are short: its facts are a few fields, progress a few numbers.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest line kept.
pub const MAX_LINE: usize = 1 << 20;

pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    pub fn new(reader: R) -> Self {
        Self::with_max(reader, MAX_LINE)
    }

    pub fn with_max(reader: R, max: usize) -> Self {
        Lines {
            reader,
            buf: Vec::new(),
            max,
        }
    }

    /// The next line without its end (`\n` or `\r\n`), or None at the end.
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        self.buf.clear();
        let mut any = false;
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(any.then(|| self.take()));
            }
            any = true;
            let (chunk, used, ended) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            let room = self.max.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.reader.consume(used);
            if ended {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> String {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(bytes: &[u8], max: usize) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A small buffer: lines span many reads.
            let reader = tokio::io::BufReader::with_capacity(7, bytes);
            let mut lines = Lines::with_max(reader, max);
            let mut out = Vec::new();
            while let Some(l) = lines.next_line().await.unwrap() {
                out.push(l);
            }
            out
        })
    }

    proptest! {
        #![proptest_config(crate::proptest_config(300))]

        /// Any bytes read as the lines they hold, each cut at the most a
        /// line may be: the same as `str::lines` for short UTF-8 lines.
        #[test]
        fn any_output_reads_as_bounded_lines(
            bytes in proptest::collection::vec(
                prop_oneof![8 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b'\r')],
                0..400,
            ),
            max in prop_oneof![1usize..64, Just(1000)],
        ) {
            let lines = read_all(&bytes, max);
            let text = String::from_utf8_lossy(&bytes);
            let expected = bytes.split(|b| *b == b'\n').count() - usize::from(bytes.ends_with(b"\n") || bytes.is_empty());
            prop_assert_eq!(lines.len(), expected);
            for l in &lines {
                prop_assert!(l.len() <= 3 * max, "{} bytes", l.len());
            }
            if bytes.iter().all(|b| b.is_ascii() && *b != b'\r') && max >= 400 {
                prop_assert_eq!(lines, text.lines().map(String::from).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn lines_end_at_newlines_and_invalid_bytes_do_not_end_the_read() {
        assert_eq!(read_all(b"a\r\nb\n\nc", 100), ["a", "b", "", "c"]);
        assert_eq!(read_all(b"caf\xe9\nok\n", 100), ["caf\u{FFFD}", "ok"]);
        assert_eq!(read_all(b"0123456789\nx", 4), ["0123", "x"]);
        assert!(read_all(b"", 4).is_empty());
    }
}
