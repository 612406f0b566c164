//! The table of our children: entering a child, reaping it, signalling it
//! and what is left of its group. Everything here runs under the table's
//! lock, and every entry records the pid that created it (a forked copy of
//! the host never touches the parent's children).

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use once_cell::sync::Lazy;

use super::ending::arm_exit_handler;
use super::on_end::spawn_detached_locked;
use super::reaper::wake_reaper_unlocked;
use super::{ExitStatus, Outcome, Owner};
use crate::core::command::Bytes;
use crate::core::os::sys;

pub(super) fn getpid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

pub(super) struct Entry {
    pub(super) owner: Owner,
    /// The pid that registered the entry: after a fork of the host, the copy
    /// of this table in the forked process must not touch our children.
    pub(super) creator: libc::pid_t,
    pub(super) process_group: bool,
    /// Signals go through it where the kernel has pidfds.
    pub(super) pidfd: Option<Arc<OwnedFd>>,
    /// The child was gone before we could watch it (a host that ignores
    /// SIGCHLD makes the kernel reap it): never signal its number.
    pub(super) vanished: bool,
    /// Live-process counter of the executor that started it; taken (and
    /// decremented) when the child is known to have exited.
    pub(super) live: Option<Arc<AtomicUsize>>,
    /// A group leader that exited, kept as a zombie while its group has
    /// other members (no pidfd group signals here): its status.
    pub(super) pinned: Option<libc::c_int>,
    /// Set once the handle is gone and the reaper owns the child.
    pub(super) orphan: Option<Orphan>,
    /// A short command of the library's own (the ssh that stops or signals
    /// a remote process): at state end it is waited for, not killed.
    pub(super) helper: bool,
    /// For the local end of a remote process (an `ssh` client): commands
    /// that end the remote side, (gently, at once). Ending the local client
    /// alone would leave the remote command running.
    pub(super) remote_stop: Option<(Vec<Bytes>, Vec<Bytes>)>,
    /// Told how the child ended, once it is reaped.
    pub(super) outcome: Option<Outcome>,
    /// See `Child::detached`.
    pub(super) detached: bool,
}

pub(super) struct Orphan {
    /// When to escalate to SIGKILL; `None` once SIGKILL was sent.
    pub(super) kill_at: Option<Instant>,
}

/// A process group whose leader was reaped while members still ran
/// (pidfd group signals only). Dropped once a signal finds it empty.
pub(super) struct Group {
    pub(super) owner: Owner,
    pub(super) creator: libc::pid_t,
    pub(super) pidfd: Arc<OwnedFd>,
    pub(super) kill_at: Option<Instant>,
}

pub(super) struct Table {
    pub(super) entries: HashMap<libc::pid_t, Entry>,
    /// Keyed by the group id (the leader's former pid).
    pub(super) groups: HashMap<libc::pid_t, Group>,
}

pub(super) static TABLE: Lazy<Mutex<Table>> = Lazy::new(|| Mutex::new(Table { entries: HashMap::new(), groups: HashMap::new() }));

pub(super) fn table() -> MutexGuard<'static, Table> {
    // A panic while holding the lock cannot leave the map inconsistent
    // (every operation is a single insert/remove), so poisoning is ignored.
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `register` is told about a freshly spawned child.
pub struct Child {
    pub pid: libc::pid_t,
    pub owner: Owner,
    pub process_group: bool,
    pub live: Option<Arc<AtomicUsize>>,
    pub pidfd: Option<Arc<OwnedFd>>,
    pub vanished: bool,
    pub outcome: Option<Outcome>,
    /// Started with `detach`: never signalled by the library on its own
    /// (close, collection, state end, exit), only reaped once it exits.
    pub detached: bool,
}

/// Enter a freshly spawned child.
pub fn register_child(c: Child) {
    arm_exit_handler();
    if let Some(l) = &c.live {
        l.fetch_add(1, Ordering::SeqCst);
    }
    let entry = Entry {
        owner: c.owner,
        creator: getpid(),
        process_group: c.process_group,
        pidfd: c.pidfd,
        vanished: c.vanished,
        live: c.live,
        pinned: None,
        orphan: None,
        helper: false,
        remote_stop: None,
        outcome: c.outcome,
        detached: c.detached,
    };
    table().entries.insert(c.pid, entry);
}

/// Enter a child that is watched by polling (no pidfd, no group).
pub fn register(pid: libc::pid_t, owner: Owner, process_group: bool, live: Option<Arc<AtomicUsize>>) {
    register_child(Child { pid, owner, process_group, live, pidfd: None, vanished: false, outcome: None, detached: false });
}

/// Reap `pid` if it has exited: `Ok(Some(status))` once. A group leader whose
/// group still has members lives on as a group (see the module comment).
pub fn try_reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    let mut t = table();
    match t.entries.get(&pid) {
        Some(e) if e.creator == getpid() => {}
        _ => return Err(io::Error::new(io::ErrorKind::NotFound, "not a live child of this library")),
    }
    reap_locked(&mut t, pid, false)
}

/// Whether the group of `e` is signalled through the leader's pidfd.
pub(super) fn pidfd_group(e: &Entry) -> Option<&Arc<OwnedFd>> {
    if e.process_group && sys::pidfd_group_signals() {
        e.pidfd.as_ref()
    } else {
        None
    }
}

pub(super) fn reap_locked(t: &mut Table, pid: libc::pid_t, block: bool) -> io::Result<Option<ExitStatus>> {
    let (pin_leader, pinned) = match t.entries.get(&pid) {
        Some(e) => (e.process_group && pidfd_group(e).is_none() && !e.vanished, e.pinned),
        None => return Err(io::Error::from_raw_os_error(libc::ECHILD)),
    };
    if pin_leader && !block {
        // Keep an exited leader as a zombie while its group has members.
        let status = match pinned {
            Some(s) => s,
            None => match sys::peek_exit(pid) {
                Ok(Some(s)) => s,
                Ok(None) => return Ok(None),
                Err(e) => {
                    forget(t, pid);
                    return Err(e);
                }
            },
        };
        if sys::group_has_members(pid, pid) {
            if let Some(e) = t.entries.get_mut(&pid) {
                if let Some(o) = &e.outcome {
                    o.set(ExitStatus(status));
                }
                e.pinned = Some(status);
                if let Some(l) = e.live.take() {
                    l.fetch_sub(1, Ordering::SeqCst);
                }
            }
            return Ok(Some(ExitStatus::from_raw(status)));
        }
    }
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: waitpid on a pid of ours with a valid status pointer.
    match sys::cvt_r(|| unsafe { libc::waitpid(pid, &mut status, flags) }) {
        Ok(0) => Ok(None),
        Err(err) => {
            // ECHILD: someone else reaped it (a host that calls waitpid(-1),
            // or one that ignores SIGCHLD). The exit code is lost.
            forget(t, pid);
            Err(err)
        }
        Ok(_) => {
            // The local ssh of a remote process was killed (by anyone): the
            // remote command would go on, so end it too.
            let stop = t.entries.get_mut(&pid).and_then(|e| e.remote_stop.take());
            let owner = t.entries.get(&pid).map(|e| e.owner).unwrap_or(0);
            let ended = ExitStatus(pinned.unwrap_or(status));
            if let Some(o) = t.entries.get(&pid).and_then(|e| e.outcome.as_ref()) {
                o.set(ended);
            }
            // A group that outlives its leader stays reachable.
            if let Some(e) = t.entries.get(&pid) {
                if let Some(fd) = pidfd_group(e) {
                    if sys::pidfd_signal(fd, 0, true).is_ok() {
                        let g = Group {
                            owner: e.owner,
                            creator: e.creator,
                            pidfd: fd.clone(),
                            kill_at: e.orphan.as_ref().and_then(|o| o.kill_at),
                        };
                        t.groups.insert(pid, g);
                    }
                }
            }
            forget(t, pid);
            if let Some((gentle, _)) = stop {
                if libc::WIFSIGNALED(status) && spawn_detached_locked(t, gentle, owner).is_ok() {
                    wake_reaper_unlocked();
                }
            }
            Ok(Some(ended))
        }
    }
}

pub(super) fn forget(t: &mut Table, pid: libc::pid_t) {
    if let Some(e) = t.entries.remove(&pid) {
        if let Some(l) = e.live {
            l.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Send `sig` to one unreaped child of ours (to its whole group if it leads
/// one and `group`).
pub(super) fn send(pid: libc::pid_t, e: &Entry, sig: libc::c_int, group: bool) -> io::Result<()> {
    if e.vanished {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    if group && e.process_group {
        if let Some(fd) = pidfd_group(e) {
            return sys::pidfd_signal(fd, sig, true);
        }
        // The entry exists, so the leader is unreaped (alive, or a zombie we
        // keep): the group id cannot have been reused.
        return sys::kill(-pid, sig);
    }
    match &e.pidfd {
        Some(fd) => sys::pidfd_signal(fd, sig, false),
        // Unreaped (we reap only through this table), so the number is ours.
        None => sys::kill(pid, sig),
    }
}

/// Whether anything of the group led by `pid` other than the leader runs.
pub(super) fn group_alive(t: &mut Table, pid: libc::pid_t) -> bool {
    if let Some(g) = t.groups.get(&pid) {
        if g.creator == getpid() && sys::pidfd_signal(&g.pidfd, 0, true).is_ok() {
            return true;
        }
        t.groups.remove(&pid);
        return false;
    }
    matches!(t.entries.get(&pid), Some(e) if e.pinned.is_some() && e.creator == getpid())
        && sys::group_has_members(pid, pid)
}

/// Send `sig` to the child `pid` (to its whole group if it leads one).
/// ESRCH once nothing of it is left to signal. A child whose status was
/// read but whose group lives on is reached through its group.
pub fn signal(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    let mut t = table();
    let me = getpid();
    if let Some(e) = t.entries.get(&pid) {
        if e.creator != me {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        if e.pinned.is_none() {
            return send(pid, e, sig, true);
        }
    }
    signal_group_locked(&mut t, pid, sig)
}

/// Signal what is left of the group that `pid` led, once the leader has
/// exited: true if any member was there to get it.
pub fn signal_group(pid: libc::pid_t, sig: libc::c_int) -> bool {
    signal_group_locked(&mut table(), pid, sig).is_ok()
}

pub(super) fn signal_group_locked(t: &mut Table, pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    if !group_alive(t, pid) {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    let r = match (t.groups.get(&pid), t.entries.get(&pid)) {
        (Some(g), _) => sys::pidfd_signal(&g.pidfd, sig, true),
        // A pinned zombie leader keeps the id reserved.
        (None, Some(_)) => sys::kill(-pid, sig),
        (None, None) => Err(io::Error::from_raw_os_error(libc::ESRCH)),
    };
    if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ESRCH)) {
        t.groups.remove(&pid);
    }
    r
}

/// How many children and groups the table holds (live or awaiting the reaper).
pub fn count() -> usize {
    let mut t = table();
    let groups: Vec<_> = t.groups.keys().copied().collect();
    for pgid in groups {
        group_alive(&mut t, pgid);
    }
    t.entries.len() + t.groups.len()
}
