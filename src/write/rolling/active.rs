//! The file being written: when to move to a new one, and how much of a batch goes where.
//!
//! Every decision is taken at a line boundary, before a write: a reopen that was asked for
//! (by [`RollingFile::reopen`](super::RollingFile::reopen) or SIGHUP), the path check (at most
//! once a second), the period edge, then the size limit. A write then takes the whole lines
//! that fit; the pipeline calls again with the rest. So a line never spans two files, and a
//! file holds at most its limit, or a single line longer than the limit.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::clock::Clock;
use super::housekeeping::Housekeeper;
use super::identity::{self, Identity, PathCheck};
use super::naming::{Naming, GZIP_EXTENSION};
use super::period::Period;

/// How often the path is compared with the open file, and how soon a failed open is retried.
pub(super) const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// When to start a new file.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rotation {
    pub(super) max_bytes: Option<u64>,
    pub(super) period: Option<Period>,
    pub(super) offset_seconds: i32,
}

impl Rotation {
    pub(super) fn rotates(&self) -> bool {
        self.max_bytes.is_some() || self.period.is_some()
    }
}

#[derive(Debug)]
struct Open {
    file: File,
    path: PathBuf,
    identity: Identity,
    /// Bytes in the file, as far as this writer knows (re-read on each path check, so a
    /// `copytruncate` is noticed).
    len: u64,
    next_rotation: Option<SystemTime>,
}

/// How to pick the name of the file to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opening {
    /// The current period's file, appended to (a reopen, a retry, the first open).
    Current,
    /// A file that does not exist yet (a rotation).
    Fresh,
}

#[derive(Debug)]
pub(super) struct Active {
    dir: PathBuf,
    naming: Naming,
    rotation: Rotation,
    clock: Arc<dyn Clock>,
    link: bool,
    housekeeper: Option<Housekeeper>,
    reopen: Arc<AtomicBool>,
    open: Option<Open>,
    stamp: String,
    counter: u32,
    at_line_start: bool,
    next_check: Instant,
    /// While no file is open: when to try again, and why the last try failed.
    retry_at: Instant,
    last_error: Option<(io::ErrorKind, String)>,
}

impl Active {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        dir: PathBuf,
        naming: Naming,
        rotation: Rotation,
        clock: Arc<dyn Clock>,
        link: bool,
        housekeeper: Option<Housekeeper>,
        reopen: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let now = Instant::now();
        let mut active = Active {
            dir,
            naming,
            rotation,
            clock,
            link,
            housekeeper,
            reopen,
            open: None,
            stamp: String::new(),
            counter: 0,
            at_line_start: true,
            next_check: now + CHECK_INTERVAL,
            retry_at: now,
            last_error: None,
        };
        if rotation.rotates() {
            let stamp = active.naming.stamp(active.clock.now());
            active.counter = active.last_counter(&stamp);
            active.stamp = stamp;
        }
        active.open_file(Opening::Current)?;
        if let Some(housekeeper) = &active.housekeeper {
            // Finishes what an earlier run left (uncompressed or expired files).
            housekeeper.request();
        }
        Ok(active)
    }

    /// The path of the open file, if one is open.
    pub(super) fn current_path(&self) -> Option<&Path> {
        self.open.as_ref().map(|o| o.path.as_path())
    }

    /// Writes a prefix of `buf`; see the module docs.
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at_line_start {
            self.prepare(buf)?;
        }
        let Some(open) = self.open.as_mut() else {
            return Err(self.unavailable());
        };
        let chunk = chunk(buf, self.at_line_start, self.rotation.max_bytes, open.len);
        let n = (&open.file).write(chunk)?;
        open.len += n as u64;
        if n > 0 {
            self.at_line_start = chunk[n - 1] == b'\n';
        }
        Ok(n)
    }

    /// Moves to another file if one is due before `buf`'s first line.
    fn prepare(&mut self, buf: &[u8]) -> io::Result<()> {
        let asked =
            self.reopen.load(Ordering::Relaxed) && self.reopen.swap(false, Ordering::AcqRel);
        let Some(open) = self.open.as_mut() else {
            if !asked && Instant::now() < self.retry_at {
                return Err(self.unavailable());
            }
            return self.open_file(Opening::Current);
        };
        let mut reopen = asked;
        if !reopen {
            let now = Instant::now();
            if now >= self.next_check {
                self.next_check = now + CHECK_INTERVAL;
                match identity::check(&open.path, &open.file, open.identity) {
                    PathCheck::Same { len } => open.len = open.len.min(len),
                    PathCheck::Moved => reopen = true,
                }
            }
        }
        if reopen {
            self.open_file(Opening::Current)?;
        }
        if let Some(next) = self.open.as_ref().and_then(|o| o.next_rotation) {
            if self.clock.now() >= next {
                self.open_file(Opening::Fresh)?;
            }
        }
        if let (Some(max), Some(open)) = (self.rotation.max_bytes, self.open.as_ref()) {
            let room = usize::try_from(max.saturating_sub(open.len)).unwrap_or(usize::MAX);
            if open.len > 0 && buf.len() > room && !buf[..room].contains(&b'\n') {
                self.open_file(Opening::Fresh)?;
            }
        }
        Ok(())
    }

    /// Opens the next file; on failure no file stays open and the next try waits a second.
    fn open_file(&mut self, opening: Opening) -> io::Result<()> {
        let before = self.open.as_ref().map(|o| o.path.clone());
        match self.try_open(opening) {
            Ok(()) => {
                self.last_error = None;
                let moved_on = before.is_some_and(|b| self.current_path() != Some(b.as_path()));
                if moved_on {
                    if let Some(housekeeper) = &self.housekeeper {
                        housekeeper.request();
                    }
                }
                Ok(())
            }
            Err(error) => {
                self.open = None;
                self.retry_at = Instant::now() + CHECK_INTERVAL;
                let error = io::Error::new(error.kind(), error.to_string());
                self.last_error = Some((error.kind(), error.to_string()));
                Err(error)
            }
        }
    }

    fn try_open(&mut self, opening: Opening) -> io::Result<()> {
        let now = self.clock.now();
        let name = if self.rotation.rotates() {
            let stamp = self.naming.stamp(now);
            let mut counter = match (stamp == self.stamp, opening) {
                (true, Opening::Fresh) => self.counter + 1,
                (true, Opening::Current) => self.counter,
                (false, _) => 0,
            };
            let name = loop {
                let name = self.naming.file_name(&stamp, counter);
                let taken = match opening {
                    Opening::Fresh => {
                        self.exists(&name) || self.exists(&format!("{name}{GZIP_EXTENSION}"))
                    }
                    Opening::Current => self.exists(&format!("{name}{GZIP_EXTENSION}")),
                };
                if !taken || counter == u32::MAX {
                    break name;
                }
                counter += 1;
            };
            self.stamp = stamp;
            self.counter = counter;
            name
        } else {
            self.naming.fixed()
        };
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| with_path(e, "cannot open log file", &path))?;
        let metadata = file
            .metadata()
            .map_err(|e| with_path(e, "cannot stat log file", &path))?;
        self.open = Some(Open {
            identity: Identity::of_file(&file)?,
            file,
            path,
            len: metadata.len(),
            next_rotation: self
                .rotation
                .period
                .map(|p| p.next_start(now, self.rotation.offset_seconds)),
        });
        self.at_line_start = true;
        self.next_check = Instant::now() + CHECK_INTERVAL;
        if let Some(housekeeper) = &self.housekeeper {
            housekeeper.set_current(&name);
        }
        if self.link {
            self.point_link(&name);
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        self.dir.join(name).symlink_metadata().is_ok()
    }

    /// The highest counter already used for `stamp` in the directory (an earlier run of the
    /// same period), so that a restart appends to its last file instead of starting over.
    fn last_counter(&self, stamp: &str) -> u32 {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| self.naming.parse(&name))
            .filter(|p| p.stamp == stamp)
            .map(|p| p.counter)
            .max()
            .unwrap_or(0)
    }

    /// Makes `{prefix}.{suffix}` a symbolic link to `name` (atomically, by renaming a fresh
    /// link over it). A failure leaves the old link: the link is a convenience, the lines
    /// are in the file either way.
    #[cfg(unix)]
    fn point_link(&self, name: &str) {
        let link = self.dir.join(self.naming.fixed());
        let fresh = self.dir.join(format!(".{}.link", self.naming.fixed()));
        let _ = std::fs::remove_file(&fresh);
        if std::os::unix::fs::symlink(name, &fresh).is_ok()
            && std::fs::rename(&fresh, &link).is_err()
        {
            let _ = std::fs::remove_file(&fresh);
        }
    }

    #[cfg(not(unix))]
    fn point_link(&self, _: &str) {}

    fn unavailable(&self) -> io::Error {
        match &self.last_error {
            Some((kind, message)) => io::Error::new(
                *kind,
                format!("{message} (trying again at most once a second)"),
            ),
            None => io::Error::other("no log file is open"),
        }
    }
}

/// The part of `buf` to write now: the rest of a cut line, or the whole lines that fit under
/// `max_bytes` (at least one line).
fn chunk(buf: &[u8], at_line_start: bool, max_bytes: Option<u64>, len: u64) -> &[u8] {
    let first_line = || {
        buf.iter()
            .position(|&b| b == b'\n')
            .map_or(buf, |i| &buf[..=i])
    };
    if !at_line_start {
        return first_line();
    }
    let Some(max) = max_bytes else {
        return buf;
    };
    let room = usize::try_from(max.saturating_sub(len)).unwrap_or(usize::MAX);
    if buf.len() <= room {
        return buf;
    }
    match buf[..room].iter().rposition(|&b| b == b'\n') {
        Some(i) => &buf[..=i],
        None => first_line(),
    }
}

fn with_path(error: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::chunk;

    #[test]
    fn chunks_end_at_line_boundaries() {
        let buf = b"aaa\nbbb\nccc\n";
        assert_eq!(chunk(buf, true, None, 0), buf);
        assert_eq!(chunk(buf, true, Some(100), 0), buf);
        assert_eq!(chunk(buf, true, Some(9), 0), b"aaa\nbbb\n");
        assert_eq!(chunk(buf, true, Some(10), 2), b"aaa\nbbb\n");
        // A line longer than the limit goes alone.
        assert_eq!(chunk(buf, true, Some(2), 0), b"aaa\n");
        // The rest of a cut line first.
        assert_eq!(chunk(b"b\nccc\n", false, Some(2), 0), b"b\n");
    }
}
