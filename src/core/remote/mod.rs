//! Remote executors: processes on other hosts through OpenSSH.

pub(crate) mod ssh;
