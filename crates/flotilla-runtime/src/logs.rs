//! Container logs: JSON lines like Docker's json-file driver,
//! `{"log":"hi\n","stream":"stdout","time":"2024-...Z"}`. The monitor writes
//! them ([`LogWriter`]); anyone reads them ([`LogStream`]), optionally
//! following the file until the container exits (inotify, no polling).

use crate::record::{now_rfc3339, ContainerDir, EXIT, LOG};
use anyhow::{Context as _, Result};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Docker splits lines longer than this into several entries.
const MAX_LINE: usize = 16 * 1024;

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Turns output chunks into timestamped JSON lines. Partial lines wait for
/// their newline (or EOF, or 16 KiB) so each entry is one line, like Docker.
pub struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn new(file: File) -> Self {
        LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Appends a chunk read from `stream`; writes every complete line in one write.
    pub fn push(&mut self, stream: Stream, chunk: &[u8]) -> Result<()> {
        let buf = &mut self.partial[stream as usize];
        buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let time = now_rfc3339();
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            encode(&mut out, &buf[start..=start + pos], stream, &time)?;
            start += pos + 1;
        }
        while buf.len() - start >= MAX_LINE {
            encode(&mut out, &buf[start..start + MAX_LINE], stream, &time)?;
            start += MAX_LINE;
        }
        buf.drain(..start);
        if !out.is_empty() {
            self.file.write_all(&out).context("writing container log")?;
        }
        Ok(())
    }

    /// Writes what is left of a stream's last line (at EOF).
    pub fn finish(&mut self, stream: Stream) -> Result<()> {
        let buf = std::mem::take(&mut self.partial[stream as usize]);
        if buf.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        encode(&mut out, &buf, stream, &now_rfc3339())?;
        self.file.write_all(&out).context("writing container log")
    }
}

fn encode(out: &mut Vec<u8>, line: &[u8], stream: Stream, time: &str) -> Result<()> {
    let entry = LogEntry {
        log: String::from_utf8_lossy(line).into_owned(),
        stream: stream.name().into(),
        time: time.into(),
    };
    serde_json::to_writer(&mut *out, &entry)?;
    out.push(b'\n');
    Ok(())
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep reading until the container exits.
    pub follow: bool,
    /// Only the last N lines (before following).
    pub tail: Option<usize>,
    /// Only entries at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// An iterator over a container's log entries; blocks while following.
pub struct LogStream {
    dir: ContainerDir,
    reader: BufReader<File>,
    opts: LogOptions,
    backlog: VecDeque<LogEntry>,
    inotify: Option<Inotify>,
    done: bool,
    line: String,
}

impl LogStream {
    pub(crate) fn open(dir: ContainerDir, opts: LogOptions) -> Result<Self> {
        // Watch before reading so no write between our EOF and the watch is missed.
        let inotify = if opts.follow {
            let ino = Inotify::init(InitFlags::IN_CLOEXEC).context("inotify_init")?;
            ino.add_watch(
                dir.path(),
                AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE,
            )
            .context("watching the container directory")?;
            Some(ino)
        } else {
            None
        };
        let path = dir.file(LOG);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                File::open(&path)?
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let mut s = LogStream {
            dir,
            reader: BufReader::new(file),
            opts,
            backlog: VecDeque::new(),
            inotify,
            done: false,
            line: String::new(),
        };
        s.load_backlog()?;
        Ok(s)
    }

    /// Reads everything present now, keeping the last `tail` entries.
    fn load_backlog(&mut self) -> Result<()> {
        while let Some(e) = self.read_entry()? {
            if self.passes(&e) {
                self.backlog.push_back(e);
                if let Some(n) = self.opts.tail {
                    while self.backlog.len() > n {
                        self.backlog.pop_front();
                    }
                }
            }
        }
        Ok(())
    }

    fn passes(&self, e: &LogEntry) -> bool {
        match self.opts.since {
            None => true,
            Some(since) => chrono::DateTime::parse_from_rfc3339(&e.time)
                .map(|t| t >= since)
                .unwrap_or(true),
        }
    }

    /// The next complete line, or None at EOF (a partial line is kept for later).
    fn read_entry(&mut self) -> Result<Option<LogEntry>> {
        loop {
            let n = self
                .reader
                .read_line(&mut self.line)
                .context("reading container log")?;
            if n == 0 || !self.line.ends_with('\n') {
                return Ok(None);
            }
            let line = std::mem::take(&mut self.line);
            match serde_json::from_str(&line) {
                Ok(e) => return Ok(Some(e)),
                Err(_) => continue, // a torn line from a crash: skip it
            }
        }
    }

    fn finished(&self) -> bool {
        if self.dir.file(EXIT).exists() {
            return true;
        }
        match self.dir.read_monitor() {
            Ok(Some(m)) => !crate::process::is_same_process(m.monitor_pid, m.monitor_start),
            _ => false,
        }
    }

    fn follow_next(&mut self) -> Result<Option<LogEntry>> {
        loop {
            if let Some(e) = self.read_entry()? {
                if self.passes(&e) {
                    return Ok(Some(e));
                }
                continue;
            }
            if self.finished() {
                // The monitor writes the exit record after the last log line:
                // drain once more, then stop.
                while let Some(e) = self.read_entry()? {
                    if self.passes(&e) {
                        return Ok(Some(e));
                    }
                }
                return Ok(None);
            }
            let ino = self.inotify.as_ref().expect("follow mode has inotify");
            // The timeout only notices a monitor that died without a record.
            if crate::process::wait_readable(ino.as_fd_raw(), Some(Duration::from_secs(2)))? {
                let _ = ino.read_events();
            }
        }
    }
}

trait RawFdOf {
    fn as_fd_raw(&self) -> i32;
}

impl RawFdOf for Inotify {
    fn as_fd_raw(&self) -> i32 {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}

impl Iterator for LogStream {
    type Item = Result<LogEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.backlog.pop_front() {
            return Some(Ok(e));
        }
        if self.done || !self.opts.follow {
            return None;
        }
        match self.follow_next() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_splits_lines_and_keeps_partials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG);
        let mut w = LogWriter::new(File::create(&path).unwrap());
        w.push(Stream::Stdout, b"a\nb").unwrap();
        w.push(Stream::Stderr, b"err\n").unwrap();
        w.push(Stream::Stdout, b"c\n").unwrap();
        w.push(Stream::Stdout, b"tail").unwrap();
        w.finish(Stream::Stdout).unwrap();
        let s = LogStream::open(ContainerDir(dir.path().into()), LogOptions::default()).unwrap();
        let got: Vec<(String, String)> = s.map(|e| e.unwrap()).map(|e| (e.stream, e.log)).collect();
        assert_eq!(
            got,
            [
                ("stdout", "a\n"),
                ("stderr", "err\n"),
                ("stdout", "bc\n"),
                ("stdout", "tail")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let s = LogStream::open(
            ContainerDir(dir.path().into()),
            LogOptions {
                tail: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.count(), 1);
    }
}
