//! Level directives in the `RUST_LOG` syntax: which targets log at which level, changeable at
//! run time without a lock on the logging path.
//!
//! A directive list is comma-separated: a bare level sets the default
//! (`warn`), `target=level` sets a target's level (`app::db=debug`), and a bare target turns
//! everything on for it (`hyper` is `hyper=trace`). Levels are kakashi's (`trace`, `debug`,
//! `info`, `warn`, `error`, `critical`, their aliases) and `off`.
//!
//! A record's target is its logger's name (for the logger-less macros, the module path; for
//! `tracing` events and `log` records, their target). A directive matches a target equal to it
//! or starting with it followed by `::`; the longest match wins. A `.` in a target or a
//! directive counts as `::` (`app.db` is `app::db`), so dotted logger names work too.
//!
//! Until directives are set, every logger follows its pipeline's minimum level. Once set (by
//! [`DirectivesHandle::set_directives`], or [`init_from_env`](crate::init_from_env) reading
//! `KAKASHI_LOG`, then `RUST_LOG`), they decide for every logger, the logger-less macros and the
//! bridges; a level set on a logger itself ([`Logger::set_level`](crate::Logger::set_level))
//! still wins for that logger.
//!
//! # How it stays cheap
//!
//! Each call site (and each [`Logger`](crate::Logger)) caches its decision together with the
//! generation of the directives it was made under. A check is two relaxed atomic loads while
//! nothing changes; a change bumps the generation, and each call site recomputes once, on its
//! next call (under a lock, off the hot path).
//!
//! # Examples
//!
//! ```
//! use kakashi::directives::Directives;
//! use kakashi::Level;
//!
//! let d: Directives = "warn,app::db=debug,hyper".parse().unwrap();
//! assert_eq!(d.level_for("app::db::pool"), Some(Level::Debug));
//! assert_eq!(d.level_for("app.db"), Some(Level::Debug));
//! assert_eq!(d.level_for("app"), Some(Level::Warn));
//! assert_eq!(d.level_for("hyper::proto"), Some(Level::Trace));
//! let err = "warn,app=loud".parse::<Directives>().unwrap_err();
//! assert!(err.to_string().contains("app=loud"));
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;
use crate::level::Level;

/// The most directives a list may hold.
const MAX_DIRECTIVES: usize = 1024;

/// A level or `off`, as the cache stores it: 0..=5 for the levels, `OFF` for off.
const OFF: u8 = 6;

/// A parsed directive list. See the [module docs](self) for the syntax and matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directives {
    /// `None`: off.
    default: Option<Level>,
    /// Targets (with `.` turned into `::`) and their levels, longest target first.
    targets: Vec<(Box<str>, Option<Level>)>,
}

impl Directives {
    /// The level a record of `target` needs (`None`: off for that target).
    pub fn level_for(&self, target: &str) -> Option<Level> {
        for (prefix, level) in &self.targets {
            if matches_target(target, prefix) {
                return *level;
            }
        }
        self.default
    }

    /// The most verbose level any directive allows (`None` when all are off): what a bridge
    /// such as `log::set_max_level` can be told.
    pub fn most_verbose(&self) -> Option<Level> {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .chain([self.default])
            .flatten()
            .min()
    }
}

impl fmt::Display for Directives {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |l: Option<Level>| l.map_or("off".to_owned(), |l| l.to_string());
        write!(f, "{}", name(self.default))?;
        for (target, level) in &self.targets {
            write!(f, ",{target}={}", name(*level))?;
        }
        Ok(())
    }
}

/// True if `target` is `prefix` or starts with `prefix::`, with `.` counting as `::`.
fn matches_target(target: &str, prefix: &str) -> bool {
    let (t, p) = (target.as_bytes(), prefix.as_bytes());
    let (mut i, mut j) = (0, 0);
    while j < p.len() {
        match (t.get(i), p[j]) {
            (Some(b'.'), b':') if p.get(j + 1) == Some(&b':') => {
                i += 1;
                j += 2;
            }
            (Some(&a), b) if a == b => {
                i += 1;
                j += 1;
            }
            _ => return false,
        }
    }
    match t.get(i) {
        None => true,
        Some(b'.') => true,
        Some(b':') => t.get(i + 1) == Some(&b':'),
        _ => false,
    }
}

/// Why a directive list was refused: names the part that is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDirectivesError {
    part: String,
    reason: &'static str,
}

impl fmt::Display for ParseDirectivesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad directive {:?}: {}; expected `level`, `target=level` or `target`, with a \
             level among trace, debug, info, warn, error, critical, off",
            self.part, self.reason
        )
    }
}

impl std::error::Error for ParseDirectivesError {}

fn parse_level(text: &str) -> Option<Option<Level>> {
    if text.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    text.parse::<Level>().ok().map(Some)
}

fn valid_target(target: &str) -> bool {
    !target.is_empty()
        && target
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'))
}

impl FromStr for Directives {
    type Err = ParseDirectivesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |part: &str, reason| ParseDirectivesError {
            part: part.chars().take(80).collect(),
            reason,
        };
        let mut directives = Directives {
            default: Some(Level::Info),
            targets: Vec::new(),
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if directives.targets.len() >= MAX_DIRECTIVES {
                return Err(bad(part, "too many directives"));
            }
            if part.contains('[') || part.contains('{') {
                return Err(bad(part, "span filters are not supported"));
            }
            match part.split_once('=') {
                Some((target, level)) => {
                    let target = target.trim();
                    if !valid_target(target) {
                        return Err(bad(part, "the target is empty or has a character other than letters, digits, `_`, `-`, `:` and `.`"));
                    }
                    let level =
                        parse_level(level.trim()).ok_or_else(|| bad(part, "unknown level"))?;
                    let target = target.replace('.', "::");
                    directives.targets.retain(|(t, _)| **t != *target);
                    directives.targets.push((target.into_boxed_str(), level));
                }
                None => match parse_level(part) {
                    Some(level) => directives.default = level,
                    None if valid_target(part) => {
                        let target = part.replace('.', "::");
                        directives.targets.retain(|(t, _)| **t != *target);
                        directives
                            .targets
                            .push((target.into_boxed_str(), Some(Level::Trace)));
                    }
                    None => return Err(bad(part, "neither a level nor a target")),
                },
            }
        }
        directives
            .targets
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(directives)
    }
}

/// The generation of the level decisions: every change of the directives (or of a pipeline's
/// minimum level) adds 1. Caches start at 0, so a call site's first call always decides.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn current() -> &'static Mutex<Option<Arc<Directives>>> {
    static CURRENT: Mutex<Option<Arc<Directives>>> = Mutex::new(None);
    &CURRENT
}

/// Invalidates every cached decision (directives changed, or a pipeline's minimum level).
pub(crate) fn bump_generation() {
    GENERATION.fetch_add(1, Ordering::Release);
    // `tracing` keeps the `tracing` layer's answer per call site.
    #[cfg(feature = "tracing")]
    crate::tracing::levels_changed();
}

#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// The global directives, if set.
pub(crate) fn installed() -> Option<Arc<Directives>> {
    current()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Installs `directives` globally (or clears them).
pub(crate) fn install(directives: Option<Directives>) {
    *current().lock().unwrap_or_else(PoisonError::into_inner) = directives.map(Arc::new);
    bump_generation();
    for hook in hooks()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        hook();
    }
}

type Hook = Box<dyn Fn() + Send + Sync>;

fn hooks() -> &'static Mutex<Vec<Hook>> {
    static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());
    &HOOKS
}

/// Calls `hook` after every change of the directives (the `log` bridge keeps
/// `log::max_level` in step this way).
#[allow(dead_code)]
pub(crate) fn on_change(hook: impl Fn() + Send + Sync + 'static) {
    hooks()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Box::new(hook));
}

/// A cached decision: the generation in the high bits, the level (or [`OFF`]) in the low 8.
#[derive(Debug)]
pub(crate) struct LevelCache(AtomicU64);

impl LevelCache {
    pub(crate) const fn new() -> Self {
        LevelCache(AtomicU64::new(0))
    }

    /// True if `level` passes, recomputing with `decide` when the cache is stale. `decide`
    /// returns the threshold (`None`: off).
    #[inline]
    pub(crate) fn enabled(&self, level: Level, decide: impl FnOnce() -> Option<Level>) -> bool {
        let cached = self.0.load(Ordering::Relaxed);
        let threshold = if cached >> 8 == generation() {
            (cached & 0xff) as u8
        } else {
            self.refresh(decide)
        };
        level as u8 >= threshold
    }

    #[cold]
    fn refresh(&self, decide: impl FnOnce() -> Option<Level>) -> u8 {
        // Read the generation first: a change racing with `decide` leaves a stale generation
        // behind, so the next call decides again.
        let generation = GENERATION.load(Ordering::Acquire);
        let threshold = decide().map_or(OFF, |l| l as u8);
        self.0
            .store(generation << 8 | u64::from(threshold), Ordering::Relaxed);
        threshold
    }
}

/// The threshold for `target`: the directives' when set, else `fallback` (a pipeline's
/// minimum level).
pub(crate) fn decide(target: &str, fallback: impl FnOnce() -> Level) -> Option<Level> {
    match installed() {
        Some(directives) => directives.level_for(target),
        None => Some(fallback()),
    }
}

/// A call site of the logger-less macros: its module path and its cached decision.
#[doc(hidden)]
#[derive(Debug)]
pub struct Callsite {
    target: &'static str,
    cache: LevelCache,
}

impl Callsite {
    #[doc(hidden)]
    pub const fn new(target: &'static str) -> Self {
        Callsite {
            target,
            cache: LevelCache::new(),
        }
    }

    /// True if a record at `level` from this call site is logged.
    #[doc(hidden)]
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        self.cache.enabled(level, || {
            decide(self.target, || crate::global::pipeline().min_level())
        })
    }
}

/// Changes the global directives at run time. Get it with [`handle`].
///
/// # Examples
///
/// ```
/// let handle = kakashi::directives::handle();
/// assert!(handle.set_directives("info,noisy::dep=error").is_ok());
/// let err = handle.set_directives("info,noisy::dep=loudest").unwrap_err();
/// assert!(err.to_string().contains("noisy::dep=loudest"));
/// // A refused list changes nothing:
/// assert_eq!(handle.directives().unwrap().to_string(), "info,noisy::dep=error");
/// handle.clear();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectivesHandle {
    _private: (),
}

/// The handle to the global directives.
pub fn handle() -> DirectivesHandle {
    DirectivesHandle { _private: () }
}

impl DirectivesHandle {
    /// Parses `text` and installs it; every call site sees the change on its next call.
    ///
    /// # Errors
    ///
    /// [`ParseDirectivesError`] naming the bad part; nothing changes then.
    pub fn set_directives(&self, text: &str) -> Result<(), ParseDirectivesError> {
        let directives: Directives = text.parse()?;
        install(Some(directives));
        Ok(())
    }

    /// Installs parsed directives.
    pub fn set(&self, directives: Directives) {
        install(Some(directives));
    }

    /// Removes the directives: every logger follows its pipeline's level again.
    pub fn clear(&self) {
        install(None);
    }

    /// The directives in force, if any.
    pub fn directives(&self) -> Option<Directives> {
        installed().map(|d| (*d).clone())
    }
}

/// Reads directives from `KAKASHI_LOG`, else `RUST_LOG`; `Ok(None)` when neither is set (or
/// both are empty).
///
/// # Errors
///
/// [`Error`] naming the variable when it is not valid UTF-8 or does not parse.
pub fn from_env() -> Result<Option<Directives>, Error> {
    for var in ["KAKASHI_LOG", "RUST_LOG"] {
        match std::env::var(var) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => {
                return text
                    .parse()
                    .map(Some)
                    .map_err(|e: ParseDirectivesError| Error::env(var, &text, e.to_string()))
            }
            Err(std::env::VarError::NotPresent) => continue,
            Err(std::env::VarError::NotUnicode(raw)) => {
                return Err(Error::env(
                    var,
                    &raw.to_string_lossy(),
                    "valid UTF-8 (the value is not)",
                ))
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_by_whole_path_segments_and_dots_count_as_colons() {
        assert!(matches_target("app", "app"));
        assert!(matches_target("app::db", "app"));
        assert!(matches_target("app.db", "app::db"));
        assert!(matches_target("app.db.pool", "app::db"));
        assert!(!matches_target("apple", "app"));
        assert!(!matches_target("app:x", "app"));
        assert!(!matches_target("ap", "app"));
        assert!(matches_target("app::db", "app::db"));
        assert!(!matches_target("app::dbx", "app::db"));
    }

    #[test]
    fn longest_prefix_wins_and_later_duplicates_replace_earlier_ones() {
        let d: Directives = "error,app=warn,app::db=debug,app::db::pool=off,app=info"
            .parse()
            .unwrap();
        assert_eq!(d.level_for("other"), Some(Level::Error));
        assert_eq!(d.level_for("app::http"), Some(Level::Info));
        assert_eq!(d.level_for("app::db::query"), Some(Level::Debug));
        assert_eq!(d.level_for("app::db::pool::conn"), None);
        assert_eq!(d.most_verbose(), Some(Level::Debug));
        assert_eq!(
            d.to_string(),
            "error,app::db::pool=off,app::db=debug,app=info"
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (text, part) in [
            ("info,app=shout", "app=shout"),
            ("info,=debug", "=debug"),
            ("info,a b=debug", "a b=debug"),
            ("app[span]=debug", "app[span]=debug"),
            ("info,%%", "%%"),
        ] {
            let err = text.parse::<Directives>().unwrap_err().to_string();
            assert!(err.contains(&format!("{part:?}")), "{text}: {err}");
        }
        assert_eq!(
            "".parse::<Directives>().unwrap().level_for("x"),
            Some(Level::Info)
        );
    }
}
