//! Black-box tests of the ingress: in-process on port 0, each test with its own AMQP namespace on
//! the real broker, callbacks encrypted with `wecom::crypto` exactly as WeCom does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_requests;
mod binary;
mod events;
mod faults;
mod helpers;
mod operations;
mod slow_clients;
mod vectors;
