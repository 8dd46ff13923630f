//! The wall clock a rolling file reads to name files and find period edges.

use std::fmt;
use std::time::SystemTime;

/// Where a [`RollingFile`](super::RollingFile) reads the time: the system clock, or a clock a
/// test moves by hand.
///
/// Only file names and period edges use it; the "at most once a second" checks use the
/// monotonic clock.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use kakashi::write::rolling::Clock;
///
/// /// A clock for tests: it shows what it was last set to.
/// #[derive(Debug)]
/// struct Manual(Mutex<SystemTime>);
///
/// impl Clock for Manual {
///     fn now(&self) -> SystemTime {
///         *self.0.lock().unwrap()
///     }
/// }
/// let clock = Manual(Mutex::new(UNIX_EPOCH + Duration::from_secs(3600)));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(3600));
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// [`SystemTime::now`]: the default clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
