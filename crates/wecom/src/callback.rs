//! Callback envelopes (being written).
