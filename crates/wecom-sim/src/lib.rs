//! wecom-sim: see the crate description; filled by its issue.
