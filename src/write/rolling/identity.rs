//! Which file a path names, to notice that the open file was renamed, deleted or truncated
//! behind the writer's back.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

/// The identity of a file: device and inode on unix. Elsewhere every file looks the same, so
/// only an explicit reopen (or rotation) moves to a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Identity {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

impl Identity {
    #[cfg_attr(not(unix), allow(unused_variables))]
    fn of(metadata: &Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Identity {
                dev: metadata.dev(),
                ino: metadata.ino(),
            }
        }
        #[cfg(not(unix))]
        Identity {}
    }

    /// The open file's identity.
    pub(super) fn of_file(file: &File) -> io::Result<Self> {
        file.metadata().map(|m| Identity::of(&m))
    }
}

/// What the path says about the open file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PathCheck {
    /// The path names the open file, which is `len` bytes long (less than the writer counted
    /// after a `copytruncate`).
    Same { len: u64 },
    /// The path names another file, or nothing (renamed or deleted): open the path afresh.
    Moved,
}

/// Compares the file at `path` with the open `file`: one `stat` and one `fstat`.
pub(super) fn check(path: &Path, file: &File, open: Identity) -> PathCheck {
    match std::fs::metadata(path) {
        Ok(m) if Identity::of(&m) == open => PathCheck::Same {
            len: file.metadata().map_or(m.len(), |f| f.len()),
        },
        _ => PathCheck::Moved,
    }
}
