//! What the `tracing` and `log` bridges share: the level check for a target, and small
//! inline buffers for a record's fields.

pub(crate) mod inline;
pub(crate) mod target_level;
