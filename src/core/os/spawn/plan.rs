//! What a child must look like, prepared before it starts: shared by the
//! posix_spawn path (posix.rs) and the fork path (fork.rs).

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::attrs::ChildExtra;

/// What the child must look like, prepared before it starts (nothing in
/// here allocates once the child runs, which the fork path needs).
pub struct ChildPlan<'a> {
    pub program: &'a CStr,
    /// NULL-terminated.
    pub argv: *const *const libc::c_char,
    /// NULL-terminated.
    pub envp: *const *const libc::c_char,
    /// (target, fd): `fd` goes onto `target` (0, 1, 2).
    pub dups: Vec<(RawFd, RawFd)>,
    /// A terminal to open as 0, 1 and 2 (after the new session).
    pub pty: Option<&'a CStr>,
    pub dir: Option<&'a CStr>,
    pub process_group: bool,
    pub new_session: bool,
    /// What only the fork path can do (attrs.rs): `Some` sends the child
    /// there.
    pub extra: Option<&'a ChildExtra>,
}
