//! bus: see the crate description; filled by its issue.
