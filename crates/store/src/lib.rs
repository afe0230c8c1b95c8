//! store: see the crate description; filled by its issue.
