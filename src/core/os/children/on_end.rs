//! Short commands of the library's own run when a child ends: for the local
//! end of a remote process (an `ssh` client), the command that ends the
//! remote side, since ending the client alone would leave it running. They
//! are children like any other, owned by the reaper, killed if they take
//! longer than 10 s, and waited for (not killed) at the state's end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ending::arm_exit_handler;
use super::reaper::wake_reaper_unlocked;
use super::table::{getpid, table, Entry, Orphan, Table};
use super::Owner;
use crate::core::command::{Bytes, CommandSpec};
use crate::core::os::spawn::{self, SpawnRequest, Stdio};
use crate::core::os::sys;

/// Mark `pid` as the local end of a remote process: whenever the library
/// ends it (close, a dropped handle, the state closing, exit) or it dies of
/// a signal, `gentle` (or `force` when forced) is run to end the remote side.
pub fn set_remote_stop(pid: libc::pid_t, gentle: Vec<Bytes>, force: Vec<Bytes>) {
    if let Some(e) = table().entries.get_mut(&pid) {
        e.remote_stop = Some((gentle, force));
    }
}

/// Run `argv` in the background (no stdio), owned by the reaper: used for
/// the short ssh commands that signal remote processes. It is killed if it
/// takes longer than 10 s.
pub fn spawn_detached(argv: Vec<Bytes>, owner: Owner) -> Result<libc::pid_t, String> {
    let pid = spawn_detached_locked(&mut table(), argv, owner)?;
    wake_reaper_unlocked();
    Ok(pid)
}

pub(super) fn spawn_detached_locked(t: &mut Table, argv: Vec<Bytes>, owner: Owner) -> Result<libc::pid_t, String> {
    let mut req = SpawnRequest::new(CommandSpec::Argv(argv));
    req.stdin = Stdio::Null;
    req.stdout = Stdio::Null;
    req.stderr = Stdio::Null;
    let s = spawn::spawn(&req).map_err(|e| e.to_string())?;
    arm_exit_handler();
    let pidfd = sys::pidfd_open(s.pid).ok().flatten().map(Arc::new);
    let entry = Entry {
        owner,
        creator: getpid(),
        process_group: false,
        pidfd,
        vanished: false,
        live: None,
        pinned: None,
        orphan: Some(Orphan { kill_at: Some(Instant::now() + Duration::from_secs(10)) }),
        helper: true,
        remote_stop: None,
        outcome: None,
        detached: false,
    };
    t.entries.insert(s.pid, entry);
    Ok(s.pid)
}
