//! The synchronization primitives of the queue protocol: `std`'s, or `loom`'s when the crate is
//! built with `--cfg kakashi_loom` for model checking (see `tests` in `queue.rs`).

#[cfg(kakashi_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(kakashi_loom)]
pub(crate) use loom::sync::Mutex;

#[cfg(not(kakashi_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
#[cfg(not(kakashi_loom))]
pub(crate) use std::sync::Mutex;

/// Locks `mutex`, ignoring poisoning: every critical section of the queue leaves its data
/// consistent at each step, so a panic inside one does not make the data unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Like [`lock`], without waiting: `None` when another thread holds the lock.
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<impl std::ops::DerefMut<Target = T> + '_> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}
