//! Callback crypto (being written).
