//! Rotation periods and the calendar arithmetic behind them (fixed UTC offsets, no tz data).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::format::civil_from_days;

/// How often a [`RollingFile`](super::RollingFile) starts a new file, whatever its size.
///
/// Periods start at whole minutes, hours or days of the configured UTC offset
/// ([`RollingFileBuilder::utc_offset_seconds`](super::RollingFileBuilder::utc_offset_seconds)), so an hourly
/// file holds exactly the lines written from `HH:00:00` to `HH:59:59.999…`.
///
/// # Examples
///
/// ```
/// use kakashi::write::rolling::Period;
///
/// assert_eq!(Period::Hourly.length().as_secs(), 3600);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Period {
    /// A new file every minute (`app.2026-12-01T13-05.log`).
    Minutely,
    /// A new file every hour (`app.2026-12-01T13.log`).
    Hourly,
    /// A new file every day (`app.2026-12-01.log`).
    Daily,
}

impl Period {
    /// The length of one period.
    pub fn length(self) -> Duration {
        Duration::from_secs(self.seconds() as u64)
    }

    fn seconds(self) -> i64 {
        match self {
            Period::Minutely => 60,
            Period::Hourly => 3600,
            Period::Daily => 86_400,
        }
    }

    /// The start of the period holding `at`, in seconds since the epoch.
    pub(super) fn start(self, at: SystemTime, offset_seconds: i32) -> i64 {
        let local = unix_seconds(at) + i64::from(offset_seconds);
        local.div_euclid(self.seconds()) * self.seconds() - i64::from(offset_seconds)
    }

    /// When the period after the one holding `at` begins.
    pub(super) fn next_start(self, at: SystemTime, offset_seconds: i32) -> SystemTime {
        from_unix_seconds(self.start(at, offset_seconds) + self.seconds())
    }
}

/// Seconds since the epoch (negative before it), rounded down.
pub(super) fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let before = e.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            }
        }
    }
}

fn from_unix_seconds(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// The calendar fields of `seconds` since the epoch shifted by `offset_seconds`.
pub(super) struct Civil {
    pub(super) year: i64,
    pub(super) month: u64,
    pub(super) day: u64,
    pub(super) hour: i64,
    pub(super) minute: i64,
    pub(super) second: i64,
}

pub(super) fn civil(seconds: i64, offset_seconds: i32) -> Civil {
    let local = seconds + i64::from(offset_seconds);
    let (year, month, day) = civil_from_days(local.div_euclid(86_400));
    let in_day = local.rem_euclid(86_400);
    Civil {
        year,
        month,
        day,
        hour: in_day / 3600,
        minute: in_day % 3600 / 60,
        second: in_day % 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn periods_start_at_their_edge() {
        // 2026-12-01T13:05:22Z
        let t = at(1_796_130_322);
        assert_eq!(Period::Hourly.start(t, 0), 1_796_130_000);
        assert_eq!(Period::Minutely.start(t, 0), 1_796_130_300);
        assert_eq!(Period::Daily.start(t, 0), 1_796_083_200);
        assert_eq!(Period::Hourly.next_start(t, 0), at(1_796_133_600));
        // At UTC+05:30 the day starts at 18:30Z the day before.
        assert_eq!(Period::Daily.start(t, 19_800), 1_796_083_200 - 19_800);
        let c = civil(1_796_130_322, 0);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2026, 12, 1, 13, 5, 22)
        );
    }

    #[test]
    fn before_the_epoch_rounds_down() {
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(
            Period::Daily.start(UNIX_EPOCH - Duration::from_secs(1), 0),
            -86_400
        );
    }
}
