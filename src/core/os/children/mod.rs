//! The process-wide table of our children, and the reaper for abandoned ones.
//!
//! Every child we start is entered here until it is reaped, and reaping
//! (`waitpid`) happens only through this table, under its lock. That gives
//! these guarantees:
//! - a child is signalled through its pidfd where the kernel has them, and
//!   by number only while it is still our unreaped child: a signal never
//!   hits an unrelated process that reused the pid;
//! - a child whose handle was closed or collected before it exited is handed
//!   to a background reaper thread, which sends SIGKILL after a grace period
//!   and reaps it, whether or not Lua ever runs again: no zombies;
//! - a child started as the leader of a process group stays reachable as a
//!   group until the group is empty, also after the leader was reaped (see
//!   "Process groups" below);
//! - when the Lua state closes, or the process exits without closing it
//!   (`os.exit(code)`), every child and group still running is killed;
//! - after a fork of the host, the copy of this table in the new process
//!   never touches the parent's children (every entry records its creator).
//!
//! No SIGCHLD handler is ever installed: the host owns its signal handlers.
//!
//! # Process groups, and why a group id is never reused under us
//! A group's id is its leader's pid. Linux keeps a pid number allocated as
//! long as any process uses it as a pid, a process group id or a session id,
//! so the number cannot be handed to a new process while the group has a
//! member (the leader, even as a zombie, or any other process).
//! - With pidfd group signals (Linux 6.9+, `PIDFD_SIGNAL_PROCESS_GROUP`) the
//!   leader is reaped as usual and the group is signalled through the
//!   leader's pidfd, which names the kernel's pid object, not the number:
//!   once the group is empty the signal reaches nobody (ESRCH), even if the
//!   number was reused meanwhile.
//! - Elsewhere the exited leader is left a zombie (its status is read with
//!   `waitid(WNOWAIT)`, so `wait()` still returns at once) for as long as
//!   other members run, which keeps the number reserved, and the group is
//!   signalled with `kill(-pgid)`. It is reaped once /proc shows no member.
//!
//! The parts: the table and what it does under its lock (`table`: enter,
//! reap, signal, groups), the ends the library gives children (`ending`:
//! a closed or collected handle, the state's end, the process's exit), the
//! short commands run when a child ends (`on_end`: the ssh that stops a
//! remote command), and the background reaper (`reaper`).

mod ending;
mod on_end;
mod reaper;
mod table;
#[cfg(test)]
mod tests;

pub use ending::{abandon, kill_all, kill_owner};
pub use on_end::{set_remote_stop, spawn_detached};
pub use reaper::{start_reaper, sweep_orphans};
pub use table::{count, register, register_child, signal, signal_group, try_reap, Child};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a child that was sent SIGTERM by `close()` or a dropped handle
/// gets before SIGKILL.
pub const GRACE: Duration = Duration::from_millis(1000);

/// How long the commands that stop remote processes get at exit.
pub(super) const REMOTE_STOP_WAIT: Duration = Duration::from_secs(3);

/// How often children for which the kernel gave no pidfd are polled (by
/// the reaper and by the event loop), and groups whose exited leader is
/// kept as a zombie. One constant for both.
pub(crate) const FALLBACK_POLL: Duration = Duration::from_millis(10);

/// Identifies the owner (a Lua state) of a child.
pub type Owner = u64;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

pub fn new_owner() -> Owner {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// Where the library leaves how a child ended for a handle that let it go
/// before it was reaped (`process:status()` after `close()`): whoever reaps
/// it, the caller or the reaper thread, fills it in.
#[derive(Clone, Debug)]
pub struct Outcome(Arc<AtomicI64>);

impl Outcome {
    const UNKNOWN: i64 = -1;

    pub fn new() -> Outcome {
        Outcome(Arc::new(AtomicI64::new(Self::UNKNOWN)))
    }

    pub(super) fn set(&self, s: ExitStatus) {
        self.0.store(i64::from(s.0), Ordering::SeqCst);
    }

    pub fn get(&self) -> Option<ExitStatus> {
        let v = self.0.load(Ordering::SeqCst);
        (v != Self::UNKNOWN).then_some(ExitStatus(v as libc::c_int))
    }
}

impl Default for Outcome {
    fn default() -> Outcome {
        Outcome::new()
    }
}

/// How a child ended: a `waitpid` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(libc::c_int);

impl ExitStatus {
    pub fn from_raw(status: libc::c_int) -> ExitStatus {
        ExitStatus(status)
    }

    /// A plain exit with `code` (what a remote command reports).
    pub fn exited(code: i32) -> ExitStatus {
        ExitStatus((code & 0xff) << 8)
    }

    /// The exit code a shell would report: the exit status, or 128 + N
    /// for a child killed by signal N.
    pub fn code(self) -> i32 {
        match self.signal() {
            Some(n) => 128 + n,
            None if libc::WIFEXITED(self.0) => libc::WEXITSTATUS(self.0),
            // Stopped/continued are never requested (no WUNTRACED), but be total.
            None => 128 + libc::WSTOPSIG(self.0),
        }
    }

    /// The signal that ended the child, if one did.
    pub fn signal(self) -> Option<i32> {
        libc::WIFSIGNALED(self.0).then(|| libc::WTERMSIG(self.0))
    }
}
