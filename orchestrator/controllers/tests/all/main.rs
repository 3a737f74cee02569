//! The controllers' and scheduler's integration tests: an in-process API server on
//! 127.0.0.1:0 (embedded store) with the real controllers against it.
//! (Each test module adds its own `mod` line below.)

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod harness;
mod lifecycle;
mod replication;
mod scheduler;
