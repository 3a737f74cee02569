//! Container logs: what a guest writes to stdout and stderr, kept line by line in a bounded
//! ring buffer (for reads and `follow`) and appended to a size-rotated file (for the
//! record), as the kubelet keeps `/var/log/pods`.
//!
//! The reader answers exactly what the agent's `GET /containerLogs/{ns}/{pod}/{container}`
//! needs (see `orchestrator/apiserver/src/logs.rs`): `tailLines` ([`LogQuery::tail_lines`]),
//! `sinceSeconds` ([`LogQuery::since`]), `timestamps`, `previous` (the attempt before the
//! current one) and `follow` ([`ContainerLog::follow`], which ends when the container
//! does). A line is text up to `\n`; a line longer than [`MAX_LINE`] is split.
//!
//! File format, one line per log line (CRI's): `<RFC 3339 time> <stdout|stderr> <F|P>
//! <text>`, `P` marking a split line's non-final parts. Files rotate at
//! [`LogConfig::max_file_bytes`] into `<name>.1` … `<name>.<max_files>`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use jiff::Timestamp;
use tokio::sync::watch;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line kept whole, in bytes.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of output.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// Position in the container's log (across attempts), for followers.
    pub seq: u64,
    pub time: Timestamp,
    pub stream: LogStream,
    /// The text, without the trailing newline.
    pub text: Bytes,
    /// Whether the line was split and continues in the next one.
    pub partial: bool,
}

impl LogLine {
    fn render(&self, timestamps: bool, out: &mut Vec<u8>) {
        if timestamps {
            out.extend_from_slice(format!("{:.9} ", self.time).as_bytes());
        }
        out.extend_from_slice(&self.text);
        if !self.partial {
            out.push(b'\n');
        }
    }
}

/// Bounds and places of one container's logs.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// How many bytes of lines the ring buffer keeps per attempt.
    pub ring_bytes: usize,
    /// The log file of the current attempt; `None` keeps logs in memory only.
    pub file: Option<PathBuf>,
    /// Rotate the file past this size.
    pub max_file_bytes: u64,
    /// How many rotated files to keep.
    pub max_files: usize,
    /// Also copy the output, unchanged, to this process's stdout/stderr (`skiff run`).
    pub passthrough: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            ring_bytes: 1 << 20,
            file: None,
            max_file_bytes: 10 << 20,
            max_files: 1,
            passthrough: false,
        }
    }
}

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// The previous attempt's logs instead of the current one's.
    pub previous: bool,
}

/// The logs of one container, across its attempts (restarts). Cheap to clone.
#[derive(Clone)]
pub struct ContainerLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ContainerLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerLog").finish_non_exhaustive()
    }
}

struct Inner {
    config: LogConfig,
    state: Mutex<State>,
    /// The next sequence number and whether the current attempt has ended.
    progress: watch::Sender<(u64, bool)>,
}

struct State {
    current: VecDeque<LogLine>,
    current_bytes: usize,
    previous: Vec<LogLine>,
    partial: [Vec<u8>; 2],
    next_seq: u64,
    ended: bool,
    file: Option<std::fs::File>,
    file_bytes: u64,
}

impl ContainerLog {
    /// A log for a container's first attempt.
    pub fn new(config: LogConfig) -> ContainerLog {
        let (progress, _) = watch::channel((0, false));
        let log = ContainerLog {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    current: VecDeque::new(),
                    current_bytes: 0,
                    previous: Vec::new(),
                    partial: [Vec::new(), Vec::new()],
                    next_seq: 0,
                    ended: false,
                    file: None,
                    file_bytes: 0,
                }),
                progress,
            }),
        };
        log.open_file(&mut log.lock());
        log
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.inner.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn open_file(&self, state: &mut State) {
        let Some(path) = &self.inner.config.file else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => {
                state.file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                state.file = Some(file);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot open log file");
            }
        }
    }

    /// A new attempt (a restart): the current lines become `previous`.
    pub fn restart(&self) {
        let mut s = self.lock();
        flush_partials(&self.inner, &mut s);
        s.previous = s.current.drain(..).collect();
        s.current_bytes = 0;
        s.ended = false;
        let seq = s.next_seq;
        drop(s);
        self.inner.progress.send_replace((seq, false));
    }

    /// The current attempt ended: pending partial lines are written and followers stop.
    pub fn finish(&self) {
        let mut s = self.lock();
        flush_partials(&self.inner, &mut s);
        s.ended = true;
        let seq = s.next_seq;
        drop(s);
        self.inner.progress.send_replace((seq, true));
    }

    /// Appends output of the guest.
    pub fn write(&self, stream: LogStream, bytes: &[u8]) {
        if self.inner.config.passthrough {
            let _ = match stream {
                LogStream::Stdout => std::io::stdout().lock().write_all(bytes),
                LogStream::Stderr => std::io::stderr().lock().write_all(bytes),
            };
        }
        let mut s = self.lock();
        let idx = stream as usize;
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    let mut line = std::mem::take(&mut s.partial[idx]);
                    line.extend_from_slice(&rest[..n]);
                    rest = &rest[n + 1..];
                    push_split(&self.inner, &mut s, stream, line);
                }
                None => {
                    s.partial[idx].extend_from_slice(rest);
                    rest = &[];
                    if s.partial[idx].len() >= MAX_LINE {
                        let line = std::mem::take(&mut s.partial[idx]);
                        push_split(&self.inner, &mut s, stream, line);
                    }
                }
            }
        }
        let seq = s.next_seq;
        drop(s);
        self.inner.progress.send_if_modified(|p| {
            let changed = p.0 != seq;
            p.0 = seq;
            changed
        });
    }

    /// The lines a query selects, rendered as text.
    pub fn read(&self, query: &LogQuery) -> Vec<u8> {
        let s = self.lock();
        let lines: Vec<&LogLine> = if query.previous {
            s.previous.iter().collect()
        } else {
            s.current.iter().collect()
        };
        let mut out = Vec::new();
        for line in select(&lines, query) {
            line.render(query.timestamps, &mut out);
        }
        out
    }

    /// Whether the current attempt has ended.
    pub fn ended(&self) -> bool {
        self.lock().ended
    }

    /// The lines a query selects, then every new line until the attempt ends. A follower
    /// slower than the ring buffer skips what the ring no longer holds.
    pub fn follow(&self, query: LogQuery) -> impl Stream<Item = Bytes> + Send + 'static {
        let mut rx = self.inner.progress.subscribe();
        rx.mark_unchanged();
        let (first, next_seq, ended) = {
            let s = self.lock();
            let lines: Vec<&LogLine> = s.current.iter().collect();
            let mut out = Vec::new();
            for line in select(&lines, &query) {
                line.render(query.timestamps, &mut out);
            }
            (out, s.next_seq, s.ended)
        };
        let follower = Follower {
            log: self.clone(),
            rx,
            next_seq,
            timestamps: query.timestamps,
            pending: (!first.is_empty()).then(|| Bytes::from(first)),
            done: ended,
        };
        futures::stream::unfold(follower, |mut f| async move {
            let chunk = f.next_chunk().await?;
            Some((chunk, f))
        })
    }

    /// The stdout sink for a `WasiCtxBuilder`.
    pub fn stdout(&self) -> LogWriter {
        LogWriter {
            log: self.clone(),
            stream: LogStream::Stdout,
        }
    }

    /// The stderr sink for a `WasiCtxBuilder`.
    pub fn stderr(&self) -> LogWriter {
        LogWriter {
            log: self.clone(),
            stream: LogStream::Stderr,
        }
    }
}

/// The state of one `follow` stream.
struct Follower {
    log: ContainerLog,
    rx: watch::Receiver<(u64, bool)>,
    next_seq: u64,
    timestamps: bool,
    pending: Option<Bytes>,
    done: bool,
}

impl Follower {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.take() {
            return Some(chunk);
        }
        loop {
            if self.done {
                return None;
            }
            let (chunk, ended) = {
                let s = self.log.lock();
                let mut out = Vec::new();
                for line in s.current.iter().filter(|l| l.seq >= self.next_seq) {
                    line.render(self.timestamps, &mut out);
                }
                self.next_seq = s.next_seq;
                (out, s.ended)
            };
            self.done = ended;
            if !chunk.is_empty() {
                return Some(Bytes::from(chunk));
            }
            if ended || self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

fn select<'a>(lines: &[&'a LogLine], query: &LogQuery) -> Vec<&'a LogLine> {
    let since: Vec<&LogLine> = lines
        .iter()
        .copied()
        .filter(|l| query.since.is_none_or(|t| l.time >= t))
        .collect();
    match query.tail_lines {
        Some(n) => since[since.len().saturating_sub(n)..].to_vec(),
        None => since,
    }
}

fn flush_partials(inner: &Inner, s: &mut State) {
    for stream in [LogStream::Stdout, LogStream::Stderr] {
        let line = std::mem::take(&mut s.partial[stream as usize]);
        if !line.is_empty() {
            push_split(inner, s, stream, line);
        }
    }
}

fn push_split(inner: &Inner, s: &mut State, stream: LogStream, line: Vec<u8>) {
    let line = Bytes::from(line);
    let mut start = 0;
    loop {
        let end = (start + MAX_LINE).min(line.len());
        let partial = end < line.len();
        push_line(inner, s, stream, line.slice(start..end), partial);
        if !partial {
            break;
        }
        start = end;
    }
}

fn push_line(inner: &Inner, s: &mut State, stream: LogStream, text: Bytes, partial: bool) {
    let line = LogLine {
        seq: s.next_seq,
        time: Timestamp::now(),
        stream,
        text,
        partial,
    };
    s.next_seq += 1;
    append_to_file(inner, s, &line);
    s.current_bytes += line.text.len();
    s.current.push_back(line);
    while s.current_bytes > inner.config.ring_bytes {
        match s.current.pop_front() {
            Some(old) => s.current_bytes -= old.text.len(),
            None => break,
        }
    }
}

fn append_to_file(inner: &Inner, s: &mut State, line: &LogLine) {
    let Some(file) = s.file.as_mut() else {
        return;
    };
    let mut record = format!(
        "{:.9} {} {} ",
        line.time,
        line.stream.as_str(),
        if line.partial { "P" } else { "F" }
    )
    .into_bytes();
    record.extend_from_slice(&line.text);
    record.push(b'\n');
    if file.write_all(&record).is_err() {
        return;
    }
    s.file_bytes += record.len() as u64;
    if s.file_bytes >= inner.config.max_file_bytes {
        rotate(inner, s);
    }
}

fn rotate(inner: &Inner, s: &mut State) {
    let Some(path) = &inner.config.file else {
        return;
    };
    s.file = None;
    let numbered = |n: usize| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if inner.config.max_files == 0 {
        let _ = std::fs::remove_file(path);
    } else {
        for n in (1..inner.config.max_files).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = std::fs::rename(path, numbered(1));
    }
    match std::fs::File::create(path) {
        Ok(file) => {
            s.file = Some(file);
            s.file_bytes = 0;
        }
        Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot rotate log file"),
    }
}

/// A guest's stdout or stderr, writing into a [`ContainerLog`].
#[derive(Clone, Debug)]
pub struct LogWriter {
    log: ContainerLog,
    stream: LogStream,
}

impl IsTerminal for LogWriter {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogWriter {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// Writes never block: the ring buffer is bounded by dropping old lines.
const WRITE_BUDGET: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn text(log: &ContainerLog, q: &LogQuery) -> String {
        String::from_utf8_lossy(&log.read(q)).into_owned()
    }

    #[test]
    fn lines_tail_previous_and_partials() {
        let log = ContainerLog::new(LogConfig::default());
        log.write(LogStream::Stdout, b"one\ntw");
        log.write(LogStream::Stderr, b"err\n");
        log.write(LogStream::Stdout, b"o\nthree");
        assert_eq!(text(&log, &LogQuery::default()), "one\nerr\ntwo\n");
        log.finish();
        assert_eq!(text(&log, &LogQuery::default()), "one\nerr\ntwo\nthree\n");
        let tail = LogQuery {
            tail_lines: Some(2),
            ..LogQuery::default()
        };
        assert_eq!(text(&log, &tail), "two\nthree\n");
        let stamped = text(
            &log,
            &LogQuery {
                tail_lines: Some(1),
                timestamps: true,
                ..LogQuery::default()
            },
        );
        assert!(stamped.ends_with("Z three\n"), "{stamped}");
        log.restart();
        log.write(LogStream::Stdout, b"again\n");
        assert_eq!(text(&log, &LogQuery::default()), "again\n");
        let previous = LogQuery {
            previous: true,
            ..LogQuery::default()
        };
        assert_eq!(text(&log, &previous), "one\nerr\ntwo\nthree\n");
        let future = LogQuery {
            since: Some(Timestamp::MAX),
            ..LogQuery::default()
        };
        assert_eq!(text(&log, &future), "");
    }

    #[test]
    fn ring_is_bounded() {
        let log = ContainerLog::new(LogConfig {
            ring_bytes: 10,
            ..LogConfig::default()
        });
        for i in 0..100 {
            log.write(LogStream::Stdout, format!("line{i}\n").as_bytes());
        }
        assert_eq!(text(&log, &LogQuery::default()), "line99\n");
    }

    #[test]
    fn file_rotates() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c").join("0.log");
        let log = ContainerLog::new(LogConfig {
            file: Some(path.clone()),
            max_file_bytes: 200,
            max_files: 2,
            ..LogConfig::default()
        });
        for i in 0..30 {
            log.write(LogStream::Stderr, format!("line {i}\n").as_bytes());
        }
        let current = std::fs::read_to_string(&path)?;
        let rotated = std::fs::read_to_string(dir.path().join("c").join("0.log.1"))?;
        assert!(rotated.contains(" stderr F line "), "{rotated}");
        assert!(
            current.len() < 200 && rotated.len() >= 200,
            "{current:?} {rotated:?}"
        );
        let newest = format!("{rotated}{current}");
        assert!(newest.ends_with("line 29\n"), "{newest}");
        Ok(())
    }

    #[tokio::test]
    async fn follow_streams_until_the_end() {
        let log = ContainerLog::new(LogConfig::default());
        log.write(LogStream::Stdout, b"before\n");
        let mut follow = Box::pin(log.follow(LogQuery::default()));
        let writer = log.clone();
        let task = tokio::spawn(async move {
            tokio::task::yield_now().await;
            writer.write(LogStream::Stdout, b"after\n");
            writer.finish();
        });
        let mut got = Vec::new();
        while let Some(chunk) = follow.next().await {
            got.extend_from_slice(&chunk);
        }
        let _ = task.await;
        assert_eq!(String::from_utf8_lossy(&got), "before\nafter\n");
    }
}
