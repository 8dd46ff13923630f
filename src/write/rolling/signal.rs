//! Reopening on SIGHUP (unix, feature `sighup`).
//!
//! The handler only sets the writer's reopen flag (an atomic store, safe in a signal handler):
//! the next write at a line boundary opens the path afresh. That needs no thread, no runtime
//! and no I/O driver, so it works the same on the async pipeline, on a runtime without
//! drivers and with no runtime at all; a line is never written between the signal and the
//! reopen check, because every write checks the flag first.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Unregisters the handler when the writer goes away.
#[derive(Debug)]
pub(super) struct SighupRegistration(signal_hook::SigId);

impl SighupRegistration {
    /// Sets `flag` on every SIGHUP from now on (and stops SIGHUP from ending the process).
    pub(super) fn register(flag: &Arc<AtomicBool>) -> io::Result<Self> {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(flag))
            .map(SighupRegistration)
    }
}

impl Drop for SighupRegistration {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.0);
    }
}
