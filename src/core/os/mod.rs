//! The operating system's side: starting children, the table of our
//! children and its reaper, and thin wrappers over system calls.

pub(crate) mod children;
pub(crate) mod open;
pub(crate) mod spawn;
pub(crate) mod sys;
pub(crate) mod which;
