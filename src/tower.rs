//! tower middleware for axum and hyper (feature `tower`): request context and access records.
