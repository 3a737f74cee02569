//! The store's integration tests, in one binary.
//!
//! - `conformance`: one suite, run against every backend (`conformance::embedded::*`,
//!   `conformance::etcd::*`). Each etcd test starts its own etcd (from `SKIFF_ETCD_BIN`,
//!   else `etcd` on the PATH); without etcd those tests fail, they never pass silently.
//! - `crash`: SIGKILL a writer process, reopen, and find every acknowledged write.
//! - `corrupt`: files that are not stores are refused with errors naming them.
//! - `embedded`: what only the embedded store has (reopen, lag, purge, lock).

mod backend;
mod conformance;
mod corrupt;
mod crash;
mod embedded;
