//! File names that sort in the order the files were written.
//!
//! A rotating writer names its files `{prefix}.{stamp}.{suffix}`, and
//! `{prefix}.{stamp}_{counter}.{suffix}` for the second and later files of one period (counter
//! `0001`, `0002`, …). The stamp is the period's start (`2026-12-01`, `2026-12-01T13`,
//! `2026-12-01T13-05`) or, with size rotation alone, the second the file was opened
//! (`2026-12-01T13-05-22`). `.` sorts before `_`, and counters are zero-padded, so plain
//! byte order is write order (up to 9,999 files in one period; retention parses the counter
//! and stays right beyond that). A writer that does not rotate writes `{prefix}.{suffix}`.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::period::{civil, unix_seconds, Period};

/// The extension compressed files get after the file's own name.
pub(super) const GZIP_EXTENSION: &str = ".gz";
/// What a compressed file is called while it is being written.
pub(super) const PARTIAL_EXTENSION: &str = ".tmp";

#[derive(Clone, Debug)]
pub(super) struct Naming {
    prefix: String,
    suffix: String,
    period: Option<Period>,
    offset_seconds: i32,
}

/// A name this writer could have given.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Parsed {
    /// Fields in sort order: stamp, then counter.
    pub(super) stamp: String,
    pub(super) counter: u32,
    pub(super) compressed: bool,
}

impl Naming {
    pub(super) fn new(
        prefix: String,
        suffix: String,
        period: Option<Period>,
        offset_seconds: i32,
    ) -> Self {
        Naming {
            prefix,
            suffix,
            period,
            offset_seconds,
        }
    }

    /// `{prefix}.{suffix}`: the file of a writer that does not rotate, or the link to the
    /// current file of one that does.
    pub(super) fn fixed(&self) -> String {
        format!("{}.{}", self.prefix, self.suffix)
    }

    /// The stamp of a file opened at `at`.
    pub(super) fn stamp(&self, at: SystemTime) -> String {
        let (start, precision) = match self.period {
            Some(period) => (period.start(at, self.offset_seconds), Some(period)),
            None => (unix_seconds(at), None),
        };
        let c = civil(start, self.offset_seconds);
        let mut stamp = format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
        let _ = match precision {
            Some(Period::Daily) => Ok(()),
            Some(Period::Hourly) => write!(stamp, "T{:02}", c.hour),
            Some(Period::Minutely) => write!(stamp, "T{:02}-{:02}", c.hour, c.minute),
            None => write!(stamp, "T{:02}-{:02}-{:02}", c.hour, c.minute, c.second),
        };
        stamp
    }

    pub(super) fn file_name(&self, stamp: &str, counter: u32) -> String {
        if counter == 0 {
            format!("{}.{stamp}.{}", self.prefix, self.suffix)
        } else {
            format!("{}.{stamp}_{counter:04}.{}", self.prefix, self.suffix)
        }
    }

    /// Reads back a name made by [`file_name`](Naming::file_name), compressed or not.
    /// Anything else in the directory (the fixed name, partial archives, other files) gives
    /// `None`.
    pub(super) fn parse(&self, name: &str) -> Option<Parsed> {
        let (name, compressed) = match name.strip_suffix(GZIP_EXTENSION) {
            Some(base) => (base, true),
            None => (name, false),
        };
        let middle = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('.')?
            .strip_suffix(self.suffix.as_str())?
            .strip_suffix('.')?;
        let (stamp, counter) = match middle.split_once('_') {
            Some((stamp, counter)) => {
                let counter: u32 = counter.parse().ok()?;
                if counter == 0 {
                    return None;
                }
                (stamp, counter)
            }
            None => (middle, 0),
        };
        let stamp_like = stamp.len() >= 10
            && stamp
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'T')
            && stamp.as_bytes()[0].is_ascii_digit();
        stamp_like.then(|| Parsed {
            stamp: stamp.to_owned(),
            counter,
            compressed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn naming(period: Option<Period>) -> Naming {
        Naming::new("app".into(), "log".into(), period, 0)
    }

    #[test]
    fn stamps_say_what_the_file_holds() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_130_322);
        assert_eq!(naming(Some(Period::Daily)).stamp(t), "2026-12-01");
        assert_eq!(naming(Some(Period::Hourly)).stamp(t), "2026-12-01T13");
        assert_eq!(naming(Some(Period::Minutely)).stamp(t), "2026-12-01T13-05");
        assert_eq!(naming(None).stamp(t), "2026-12-01T13-05-22");
        let east = Naming::new("app".into(), "log".into(), Some(Period::Hourly), 3600);
        assert_eq!(east.stamp(t), "2026-12-01T14");
    }

    #[test]
    fn names_sort_in_write_order_and_parse_back() {
        let n = naming(Some(Period::Hourly));
        let names = [
            n.file_name("2026-12-01T13", 0),
            n.file_name("2026-12-01T13", 1),
            n.file_name("2026-12-01T13", 2) + GZIP_EXTENSION,
            n.file_name("2026-12-01T13", 10),
            n.file_name("2026-12-01T14", 0),
        ];
        assert_eq!(names[0], "app.2026-12-01T13.log");
        assert_eq!(names[1], "app.2026-12-01T13_0001.log");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        let parsed: Vec<_> = names.iter().map(|s| n.parse(s).unwrap()).collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]));
        assert!(parsed[2].compressed);
        for other in [
            "app.log",
            "app.2026-12-01T13.log.gz.tmp",
            "app.x.log",
            "ap.2026-12-01.log",
        ] {
            assert_eq!(n.parse(other), None, "{other}");
        }
    }
}
