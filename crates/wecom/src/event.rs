//! Typed events (being written).
