//! Compression and retention of rotated files, off the logging path.
//!
//! After a rotation has opened the new file, the writer asks for a pass: on a tokio runtime
//! it runs in a blocking task (`spawn_blocking`), without one on a short-lived thread. Passes
//! never overlap. A pass looks at the directory rather than at a list it was handed, so it
//! also finishes what an earlier process left: a partial archive (`*.gz.tmp`) is deleted,
//! and a rotated file still uncompressed is compressed again from the start. A file is
//! compressed into `name.gz.tmp`, synced, renamed to `name.gz`, and only then is `name`
//! removed: a crash at any point leaves the whole uncompressed file.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::naming::{Naming, Parsed, PARTIAL_EXTENSION};

/// Which rotated files to keep. The file being written always stays and counts.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Retention {
    pub(super) max_files: Option<usize>,
    pub(super) max_age: Option<Duration>,
    pub(super) max_total_bytes: Option<u64>,
}

impl Retention {
    fn is_set(&self) -> bool {
        self.max_files.is_some() || self.max_age.is_some() || self.max_total_bytes.is_some()
    }
}

/// Starts passes and lets callers wait for them.
#[derive(Clone, Debug)]
pub(super) struct Housekeeper {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    naming: Naming,
    retention: Retention,
    max_file_bytes: Option<u64>,
    gzip: bool,
    /// The name of the file being written, which a pass never touches (nor anything that
    /// sorts after it).
    current: Mutex<String>,
    /// Held for a whole pass: passes never overlap.
    pass: Mutex<()>,
    pending: Mutex<usize>,
    idle: Condvar,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Counts a pass as pending until it is dropped (run, or dropped unrun by a runtime that is
/// shutting down).
struct PendingPass(Arc<Shared>);

impl Drop for PendingPass {
    fn drop(&mut self) {
        let mut pending = lock(&self.0.pending);
        *pending = pending.saturating_sub(1);
        self.0.idle.notify_all();
    }
}

impl Housekeeper {
    /// `None` when there is nothing to do: no retention and no compression.
    pub(super) fn new(
        dir: PathBuf,
        naming: Naming,
        retention: Retention,
        max_file_bytes: Option<u64>,
        gzip: bool,
    ) -> Option<Self> {
        (retention.is_set() || gzip).then(|| Housekeeper {
            shared: Arc::new(Shared {
                dir,
                naming,
                retention,
                max_file_bytes,
                gzip,
                current: Mutex::new(String::new()),
                pass: Mutex::new(()),
                pending: Mutex::new(0),
                idle: Condvar::new(),
                errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        })
    }

    /// Records the name of the file now being written.
    pub(super) fn set_current(&self, name: &str) {
        name.clone_into(&mut lock(&self.shared.current));
    }

    /// Starts a pass in the background.
    pub(super) fn request(&self) {
        *lock(&self.shared.pending) += 1;
        let pass = PendingPass(Arc::clone(&self.shared));
        let job = move || {
            pass.0.run();
            drop(pass);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(job)),
            Err(_) => {
                // If the thread cannot start, `job` (and its `PendingPass`) is dropped: the
                // next rotation's pass does the work.
                let _ = std::thread::Builder::new()
                    .name("kakashi-rolling".into())
                    .spawn(job);
            }
        }
    }

    /// Waits until no pass is pending or running; false if `timeout` passed first.
    pub(super) fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = lock(&self.shared.pending);
        while *pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .shared
                .idle
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    pub(super) fn errors(&self) -> (u64, Option<String>) {
        (
            self.shared.errors.load(Ordering::Relaxed),
            lock(&self.shared.last_error).clone(),
        )
    }
}

/// A rotated file found in the directory.
struct Found {
    parsed: Parsed,
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

impl Shared {
    fn run(&self) {
        let _one_at_a_time = lock(&self.pass);
        if let Err(error) = self.pass() {
            self.failed(format!(
                "housekeeping in {} failed: {error}",
                self.dir.display()
            ));
        }
    }

    fn failed(&self, message: String) {
        if self.errors.fetch_add(1, Ordering::Relaxed) == 0 {
            // The first failure is told at once; later ones are counted and kept.
            eprintln!("kakashi: {message}");
        }
        *lock(&self.last_error) = Some(message);
    }

    fn pass(&self) -> io::Result<()> {
        let mut rotated = self.scan()?;
        // Read after the scan: a rotation during the scan only moves `current` later.
        let current_name = lock(&self.current).clone();
        let Some(current) = self.naming.parse(&current_name) else {
            return Ok(());
        };
        rotated.retain(|f| f.parsed < current);
        if self.gzip {
            for found in &mut rotated {
                if !found.parsed.compressed {
                    if let Err(error) = compress(found) {
                        self.failed(format!("cannot compress {}: {error}", found.path.display()));
                    }
                }
            }
        }
        // The current file counts at its size limit when it has one, so that the budget
        // holds until the next rotation, not only now.
        let current_len = fs::metadata(self.dir.join(&current_name)).map_or(0, |m| m.len());
        self.retain(rotated, current_len.max(self.max_file_bytes.unwrap_or(0)));
        Ok(())
    }

    /// Rotated files, oldest first; partial archives are removed on the way.
    fn scan(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(partial) = name.strip_suffix(PARTIAL_EXTENSION) {
                if self.naming.parse(partial).is_some_and(|p| p.compressed) {
                    // Left by a pass that did not finish; its source is still there.
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            let Some(parsed) = self.naming.parse(name) else {
                continue;
            };
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            found.push(Found {
                parsed,
                path: entry.path(),
                len: metadata.len(),
                modified: metadata.modified().unwrap_or_else(|_| SystemTime::now()),
            });
        }
        found.sort_by(|a, b| a.parsed.cmp(&b.parsed));
        // A file and its archive both present: the archive is whole (it was renamed into
        // place after a sync), so the pass that made it stopped before removing the source.
        let mut i = 0;
        while i + 1 < found.len() {
            let same = found[i].parsed.stamp == found[i + 1].parsed.stamp
                && found[i].parsed.counter == found[i + 1].parsed.counter;
            if same {
                let _ = fs::remove_file(&found[i].path);
                found.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(found)
    }

    /// Removes rotated files beyond the limits, oldest first.
    fn retain(&self, rotated: Vec<Found>, current_len: u64) {
        let limits = self.retention;
        let now = SystemTime::now();
        let mut kept_files = 1; // the current file
        let mut kept_bytes = current_len;
        for found in rotated.into_iter().rev() {
            let too_many = limits.max_files.is_some_and(|max| kept_files >= max);
            let too_old = limits.max_age.is_some_and(|age| {
                now.duration_since(found.modified)
                    .is_ok_and(|elapsed| elapsed > age)
            });
            let too_big = limits
                .max_total_bytes
                .is_some_and(|max| kept_bytes.saturating_add(found.len) > max);
            if too_many || too_old || too_big {
                if let Err(error) = fs::remove_file(&found.path) {
                    if error.kind() != io::ErrorKind::NotFound {
                        self.failed(format!("cannot remove {}: {error}", found.path.display()));
                    }
                }
            } else {
                kept_files += 1;
                kept_bytes = kept_bytes.saturating_add(found.len);
            }
        }
    }
}

/// Compresses `found` into `found.gz` (see the module docs for the crash-safe order) and
/// points `found` at the archive.
#[cfg(feature = "gzip")]
fn compress(found: &mut Found) -> io::Result<()> {
    use std::io::Write as _;

    use super::naming::GZIP_EXTENSION;

    let mut archive = found.path.clone().into_os_string();
    archive.push(GZIP_EXTENSION);
    let archive = PathBuf::from(archive);
    let mut partial = archive.clone().into_os_string();
    partial.push(PARTIAL_EXTENSION);
    let partial = PathBuf::from(partial);

    let mut source = fs::File::open(&found.path)?;
    let out = fs::File::create(&partial)?;
    let mut encoder = flate2::write::GzEncoder::new(
        io::BufWriter::with_capacity(64 * 1024, out),
        flate2::Compression::default(),
    );
    let result = io::copy(&mut source, &mut encoder)
        .and_then(|_| encoder.finish())
        .and_then(|buffered| {
            buffered
                .into_inner()
                .map_err(io::IntoInnerError::into_error)
        })
        .and_then(|mut out| {
            out.flush()?;
            // The archive keeps the file's age, which retention by age reads.
            let _ = out.set_modified(found.modified);
            out.sync_all()
        });
    if let Err(error) = result {
        let _ = fs::remove_file(&partial);
        return Err(error);
    }
    fs::rename(&partial, &archive)?;
    fs::remove_file(&found.path)?;
    found.len = fs::metadata(&archive).map_or(found.len, |m| m.len());
    found.path = archive;
    found.parsed.compressed = true;
    Ok(())
}

#[cfg(not(feature = "gzip"))]
fn compress(_: &mut Found) -> io::Result<()> {
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
