//! Reading the CRI log files conmon writes, the way `kubectl logs` shows them.
//!
//! Each record is `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n`; `P` marks a partial
//! line continued by the next record. Records are joined into lines before filtering, so tail and
//! since count whole lines.

use std::future::Future;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// What to read (the fields of a `kubectl logs` request).
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Only the last N lines (before `since` and `limit_bytes` apply).
    pub tail_lines: Option<usize>,
    /// Only lines logged at or after this time.
    pub since: Option<SystemTime>,
    /// Prefix each line with its RFC3339Nano UTC timestamp and a space.
    pub timestamps: bool,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
    /// Keep reading new lines until the `stop` future resolves.
    pub follow: bool,
}

/// How often a follow checks the file for new data.
const POLL: Duration = Duration::from_millis(100);
const CHUNK: u64 = 64 * 1024;

/// One parsed record.
struct Record<'a> {
    ts: OffsetDateTime,
    partial: bool,
    content: &'a [u8],
}

fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let ts = OffsetDateTime::parse(ts, &Rfc3339).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or(b"");
    Some(Record {
        ts,
        partial: tag.first() == Some(&b'P'),
        content,
    })
}

fn format_ts(ts: OffsetDateTime) -> String {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.nanosecond()
    )
}

/// Streams the log as kubectl shows it (partial lines joined, timestamps prefixed when asked).
/// With `follow` it keeps reading new lines (polling every 100 ms) until `stop` resolves — the agent
/// passes a future that ends when the container has exited — then drains what is left and ends.
pub fn read(
    path: PathBuf,
    opts: LogOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let state = Reader {
        path,
        opts,
        file: None,
        pos: 0,
        pending: Vec::new(),
        partial: None,
        stop: Box::pin(stop),
        stopped: false,
        emitted: 0,
        done: false,
        cap: None,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            match st.next_chunk().await {
                Ok(Some(b)) if !b.is_empty() => return Some((Ok(b), st)),
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
}

struct Reader {
    path: PathBuf,
    opts: LogOptions,
    file: Option<tokio::fs::File>,
    /// File offset up to which records have been consumed (complete records only).
    pos: u64,
    /// Bytes read past `pos` that do not yet form a complete record.
    pending: Vec<u8>,
    /// A line being assembled from partial records: (timestamp of its first record, content).
    partial: Option<(OffsetDateTime, Vec<u8>)>,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    stopped: bool,
    emitted: u64,
    done: bool,
    /// Without follow, the file's length when it was opened: the answer is that snapshot,
    /// not lines the container writes while it is being read (a tail of N stays N lines).
    cap: Option<u64>,
}

impl Reader {
    /// The next piece of output: Some(bytes) (maybe empty), or None at the end.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        if self.file.is_none() {
            let mut file = tokio::fs::File::open(&self.path).await?;
            if !self.opts.follow {
                self.cap = Some(file.metadata().await?.len());
            }
            let start = match self.opts.tail_lines {
                Some(n) => tail_offset(&mut file, n).await?,
                None => 0,
            };
            file.seek(SeekFrom::Start(start)).await?;
            self.pos = start;
            self.file = Some(file);
            let mut out = self.read_new().await?;
            if let Some(n) = self.opts.tail_lines {
                let have = out.iter().filter(|b| **b == b'\n').count();
                if have < n && self.opts.limit_bytes.is_none() {
                    let mut older =
                        rotated_tail(self.path.clone(), self.opts.clone(), n - have).await?;
                    if !older.is_empty() {
                        older.extend_from_slice(&out);
                        out = Bytes::from(older);
                    }
                }
            }
            if !self.opts.follow {
                self.done = true;
            }
            return Ok(Some(out));
        }
        if self.stopped {
            // Final drain after stop.
            let out = self.read_new().await?;
            self.done = true;
            return Ok(Some(out));
        }
        let out = self.read_new().await?;
        if !out.is_empty() || self.done {
            return Ok(Some(out));
        }
        tokio::select! {
            _ = &mut self.stop => self.stopped = true,
            _ = tokio::time::sleep(POLL) => {}
        }
        Ok(Some(Bytes::new()))
    }

    /// Reads whatever was appended and returns the formatted complete lines.
    async fn read_new(&mut self) -> std::io::Result<Bytes> {
        let Some(file) = self.file.as_mut() else {
            return Ok(Bytes::new());
        };
        let len = file.metadata().await?.len();
        let len = self.cap.map_or(len, |cap| len.min(cap));
        let consumed_to = self.pos + self.pending.len() as u64;
        if len < self.pos {
            // Truncated (rotated in place): start over.
            file.seek(SeekFrom::Start(0)).await?;
            self.pos = 0;
            self.pending.clear();
            self.partial = None;
        } else if len == consumed_to {
            return Ok(Bytes::new());
        }
        let mut buf = Vec::new();
        let from = self.pos + self.pending.len() as u64;
        (&mut *file)
            .take(len.saturating_sub(from))
            .read_to_end(&mut buf)
            .await?;
        self.pending.extend_from_slice(&buf);
        let mut out = Vec::new();
        let mut consumed = 0;
        while let Some(nl) = self.pending[consumed..].iter().position(|b| *b == b'\n') {
            let line = &self.pending[consumed..consumed + nl];
            consumed += nl + 1;
            let Some(rec) = parse_record(line) else {
                continue;
            };
            let (ts, content) = match self.partial.take() {
                Some((ts, mut acc)) => {
                    acc.extend_from_slice(rec.content);
                    (ts, acc)
                }
                None => (rec.ts, rec.content.to_vec()),
            };
            if rec.partial {
                self.partial = Some((ts, content));
                continue;
            }
            if let Some(since) = self.opts.since
                && SystemTime::from(ts) < since
            {
                continue;
            }
            if self.opts.timestamps {
                out.extend_from_slice(format_ts(ts).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(&content);
            out.push(b'\n');
        }
        self.pending.drain(..consumed);
        self.pos += consumed as u64;
        if let Some(limit) = self.opts.limit_bytes {
            let room = limit.saturating_sub(self.emitted);
            if out.len() as u64 >= room {
                out.truncate(room as usize);
                self.done = true;
            }
        }
        self.emitted += out.len() as u64;
        Ok(Bytes::from(out))
    }
}

/// The last `n` lines of the previous generation, `<path>.1`, when the file was
/// rotated (the agent keeps one, as the kubelet does): right after a rotation the
/// live file holds fewer lines than a `--tail` asks for.
async fn rotated_tail(path: PathBuf, opts: LogOptions, n: usize) -> std::io::Result<Vec<u8>> {
    let mut path = path.into_os_string();
    path.push(".1");
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let start = tail_offset(&mut file, n).await?;
    file.seek(SeekFrom::Start(start)).await?;
    let cap = file.metadata().await?.len();
    let mut older = Reader {
        path: PathBuf::from(path),
        opts: LogOptions {
            tail_lines: Some(n),
            follow: false,
            limit_bytes: None,
            ..opts
        },
        file: Some(file),
        pos: start,
        pending: Vec::new(),
        partial: None,
        stop: Box::pin(std::future::ready(())),
        stopped: false,
        emitted: 0,
        done: false,
        cap: Some(cap),
    };
    Ok(older.read_new().await?.to_vec())
}

/// Offset where the last `n` complete lines start (a line ends with an `F` record).
async fn tail_offset(file: &mut tokio::fs::File, n: usize) -> std::io::Result<u64> {
    let len = file.metadata().await?.len();
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from)).await?;
        file.read_exact(&mut chunk).await?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        // Walk complete records from the end; an unterminated last record is still being written.
        let newlines: Vec<usize> = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        let mut full = 0usize;
        for (k, &end) in newlines.iter().enumerate().rev() {
            let begin = match k {
                0 if start == 0 => 0,
                0 => break, // its beginning lies in the part not read yet
                _ => newlines[k - 1] + 1,
            };
            if parse_record(&buf[begin..end]).is_some_and(|r| !r.partial) {
                full += 1;
                if full == n + 1 {
                    return Ok(start + end as u64 + 1);
                }
            }
        }
        if start == 0 {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn collect(path: PathBuf, opts: LogOptions) -> String {
        let s = read(path, opts, async {});
        let parts: Vec<_> = s.collect().await;
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(&p.unwrap());
        }
        String::from_utf8(out).unwrap()
    }

    fn sample() -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        use std::io::Write;
        write!(
            f,
            "2024-01-01T00:00:01.000000001+00:00 stdout F one\n\
             2024-01-01T00:00:02.5+00:00 stderr P tw\n\
             2024-01-01T00:00:02.6+00:00 stderr F o\n\
             garbage\n\
             2024-01-01T01:00:03+01:00 stdout F three\n\
             2024-01-01T00:00:04Z stdout F \n\
             2024-01-01T00:00:05Z stdout F five\n\
             2024-01-01T00:00:06Z stdout P unterminated"
        )
        .unwrap();
        f
    }

    #[tokio::test]
    async fn a_tail_reaches_into_the_rotated_generation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("0.log");
        std::fs::write(
            dir.path().join("0.log.1"),
            "2024-01-01T00:00:01Z stdout F a\n2024-01-01T00:00:02Z stdout F b\n",
        )
        .unwrap();
        std::fs::write(&live, "2024-01-01T00:00:03Z stdout F c\n").unwrap();
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(collect(live.clone(), tail(1)).await, "c\n");
        assert_eq!(collect(live.clone(), tail(2)).await, "b\nc\n");
        assert_eq!(collect(live.clone(), tail(10)).await, "a\nb\nc\n");
        // Without --tail only the live file is read, as before.
        assert_eq!(collect(live.clone(), LogOptions::default()).await, "c\n");
    }

    #[tokio::test]
    async fn joins_partials_and_tails() {
        let f = sample();
        let p = f.path().to_path_buf();
        assert_eq!(
            collect(p.clone(), LogOptions::default()).await,
            "one\ntwo\nthree\n\nfive\n"
        );
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(collect(p.clone(), tail(2)).await, "\nfive\n");
        assert_eq!(collect(p.clone(), tail(4)).await, "two\nthree\n\nfive\n");
        assert_eq!(collect(p.clone(), tail(0)).await, "");
        assert_eq!(
            collect(p.clone(), tail(100)).await,
            "one\ntwo\nthree\n\nfive\n"
        );
        let ts = LogOptions {
            timestamps: true,
            tail_lines: Some(4),
            ..Default::default()
        };
        assert_eq!(
            collect(p.clone(), ts).await,
            "2024-01-01T00:00:02.500000000Z two\n2024-01-01T00:00:03.000000000Z three\n\
             2024-01-01T00:00:04.000000000Z \n2024-01-01T00:00:05.000000000Z five\n"
        );
        let since =
            SystemTime::from(OffsetDateTime::parse("2024-01-01T00:00:03Z", &Rfc3339).unwrap());
        let o = LogOptions {
            since: Some(since),
            ..Default::default()
        };
        assert_eq!(collect(p.clone(), o).await, "three\n\nfive\n");
        let o = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(collect(p.clone(), o).await, "one\ntw");
    }

    #[tokio::test]
    async fn tail_across_chunks() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        use std::io::Write;
        for i in 0..20000 {
            writeln!(f, "2024-01-01T00:00:00Z stdout F line {i}").unwrap();
        }
        let o = LogOptions {
            tail_lines: Some(3),
            ..Default::default()
        };
        assert_eq!(
            collect(f.path().to_path_buf(), o).await,
            "line 19997\nline 19998\nline 19999\n"
        );
        let o = LogOptions {
            tail_lines: Some(15000),
            ..Default::default()
        };
        let out = collect(f.path().to_path_buf(), o).await;
        assert_eq!(out.lines().count(), 15000);
        assert!(out.starts_with("line 5000\n"));
    }

    #[tokio::test]
    async fn follow_until_stop() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let p = f.path().to_path_buf();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut s = Box::pin(read(
            p.clone(),
            LogOptions {
                follow: true,
                ..Default::default()
            },
            async {
                let _ = rx.await;
            },
        ));
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        writeln!(w, "2024-01-01T00:00:00Z stdout F first").unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from("first\n"));
        write!(w, "2024-01-01T00:00:00Z stdout P sec").unwrap();
        w.flush().unwrap();
        writeln!(w, "\n2024-01-01T00:00:00Z stdout F ond").unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from("second\n"));
        writeln!(w, "2024-01-01T00:00:00Z stdout F last").unwrap();
        tx.send(()).unwrap();
        let mut rest = Vec::new();
        while let Some(b) = s.next().await {
            rest.extend_from_slice(&b.unwrap());
        }
        assert_eq!(rest, b"last\n");
    }
}
