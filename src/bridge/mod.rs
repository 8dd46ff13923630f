//! What the `tracing` and `log` bridges share: the level check for a target, and (for the
//! `log` bridge) small inline buffers for a record's fields.

#[cfg(feature = "log")]
pub(crate) mod inline;
pub(crate) mod target_level;
