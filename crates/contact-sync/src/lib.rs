//! contact-sync: see the crate description; filled by its issue.
