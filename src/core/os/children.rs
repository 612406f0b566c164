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

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use crate::core::command::{Bytes, CommandSpec};
use crate::core::os::spawn::{self, SpawnRequest, Stdio};
use crate::core::os::sys;

/// How long a child that was sent SIGTERM by `close()` or a dropped handle
/// gets before SIGKILL.
pub const GRACE: Duration = Duration::from_millis(1000);

/// How long the commands that stop remote processes get at exit.
const REMOTE_STOP_WAIT: Duration = Duration::from_secs(3);

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

    fn set(&self, s: ExitStatus) {
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

fn getpid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

struct Entry {
    owner: Owner,
    /// The pid that registered the entry: after a fork of the host, the copy
    /// of this table in the forked process must not touch our children.
    creator: libc::pid_t,
    process_group: bool,
    /// Signals go through it where the kernel has pidfds.
    pidfd: Option<Arc<OwnedFd>>,
    /// The child was gone before we could watch it (a host that ignores
    /// SIGCHLD makes the kernel reap it): never signal its number.
    vanished: bool,
    /// Live-process counter of the executor that started it; taken (and
    /// decremented) when the child is known to have exited.
    live: Option<Arc<AtomicUsize>>,
    /// A group leader that exited, kept as a zombie while its group has
    /// other members (no pidfd group signals here): its status.
    pinned: Option<libc::c_int>,
    /// Set once the handle is gone and the reaper owns the child.
    orphan: Option<Orphan>,
    /// A short command of the library's own (the ssh that stops or signals
    /// a remote process): at state end it is waited for, not killed.
    helper: bool,
    /// For the local end of a remote process (an `ssh` client): commands
    /// that end the remote side, (gently, at once). Ending the local client
    /// alone would leave the remote command running.
    remote_stop: Option<(Vec<Bytes>, Vec<Bytes>)>,
    /// Told how the child ended, once it is reaped.
    outcome: Option<Outcome>,
    /// See `Child::detached`.
    detached: bool,
}

struct Orphan {
    /// When to escalate to SIGKILL; `None` once SIGKILL was sent.
    kill_at: Option<Instant>,
}

/// A process group whose leader was reaped while members still ran
/// (pidfd group signals only). Dropped once a signal finds it empty.
struct Group {
    owner: Owner,
    creator: libc::pid_t,
    pidfd: Arc<OwnedFd>,
    kill_at: Option<Instant>,
}

struct Table {
    entries: HashMap<libc::pid_t, Entry>,
    /// Keyed by the group id (the leader's former pid).
    groups: HashMap<libc::pid_t, Group>,
}

static TABLE: Lazy<Mutex<Table>> = Lazy::new(|| Mutex::new(Table { entries: HashMap::new(), groups: HashMap::new() }));
/// The reaper thread, once it could be started. Starting a thread can fail
/// (RLIMIT_NPROC counts threads too); until it runs, orphans are swept by
/// `sweep_orphans` from the library's own calls instead.
static REAPER: Mutex<Option<Reaper>> = Mutex::new(None);
static REAPER_RUNNING: AtomicBool = AtomicBool::new(false);
/// The reaper's eventfd once it runs (it is never closed after that).
static REAPER_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
static ATEXIT: Once = Once::new();

fn table() -> MutexGuard<'static, Table> {
    // A panic while holding the lock cannot leave the map inconsistent
    // (every operation is a single insert/remove), so poisoning is ignored.
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Install the exit handler that ends our children, once, with the first child.
fn arm_exit_handler() {
    ATEXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function that never unwinds.
        unsafe { libc::atexit(kill_all_at_exit) };
    });
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

fn spawn_detached_locked(t: &mut Table, argv: Vec<Bytes>, owner: Owner) -> Result<libc::pid_t, String> {
    let mut req = SpawnRequest::new(CommandSpec::Argv(argv));
    req.stdin = Stdio::Null;
    req.stdout = Stdio::Null;
    req.stderr = Stdio::Null;
    let s = spawn::spawn(&req)?;
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
fn pidfd_group(e: &Entry) -> Option<&Arc<OwnedFd>> {
    if e.process_group && sys::pidfd_group_signals() {
        e.pidfd.as_ref()
    } else {
        None
    }
}

fn reap_locked(t: &mut Table, pid: libc::pid_t, block: bool) -> io::Result<Option<ExitStatus>> {
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
    let r = loop {
        // SAFETY: waitpid on a pid of ours with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break r;
    };
    match r {
        0 => Ok(None),
        -1 => {
            // ECHILD: someone else reaped it (a host that calls waitpid(-1),
            // or one that ignores SIGCHLD). The exit code is lost.
            let err = io::Error::last_os_error();
            forget(t, pid);
            Err(err)
        }
        _ => {
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

fn forget(t: &mut Table, pid: libc::pid_t) {
    if let Some(e) = t.entries.remove(&pid) {
        if let Some(l) = e.live {
            l.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Send `sig` to one unreaped child of ours (to its whole group if it leads
/// one and `group`).
fn send(pid: libc::pid_t, e: &Entry, sig: libc::c_int, group: bool) -> io::Result<()> {
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
fn group_alive(t: &mut Table, pid: libc::pid_t) -> bool {
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

fn signal_group_locked(t: &mut Table, pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
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

/// The handle of a child is gone (or closed) before the child and its group
/// ended: send SIGTERM (SIGKILL when `force`) to it and its group, and let
/// the reaper finish them off without blocking the caller.
/// `sig` is SIGTERM for a plain close, SIGKILL when forced, or what the
/// caller chose (`close("INT")`): it (and SIGCONT) first, SIGKILL after the
/// grace period if anything is left.
pub fn abandon(pid: libc::pid_t, sig: libc::c_int) {
    let mut t = table();
    let me = getpid();
    let force = sig == libc::SIGKILL;
    let kill_at = if force { None } else { Some(Instant::now() + GRACE) };
    let (owner, stop) = match t.entries.get_mut(&pid) {
        Some(e) if e.creator == me && e.detached => {
            // Left to run: the reaper only reaps it once it exits.
            e.orphan = Some(Orphan { kill_at: None });
            let _ = reap_locked(&mut t, pid, false);
            drop(t);
            wake_reaper();
            return;
        }
        Some(e) if e.creator == me => (e.owner, e.remote_stop.take()),
        Some(_) => return, // a forked copy's table: not ours to touch
        None => {
            // The leader is gone; its group may not be.
            if signal_group_locked(&mut t, pid, sig).is_ok() {
                if !force {
                    let _ = signal_group_locked(&mut t, pid, libc::SIGCONT);
                }
                if let Some(g) = t.groups.get_mut(&pid) {
                    g.kill_at = kill_at;
                } else if let Some(e) = t.entries.get_mut(&pid) {
                    e.orphan = Some(Orphan { kill_at });
                }
                drop(t);
                wake_reaper();
            }
            return;
        }
    };
    if let Some((gentle, forced)) = stop {
        let _ = spawn_detached_locked(&mut t, if force { forced } else { gentle }, owner);
    }
    if let Some(e) = t.entries.get(&pid) {
        let gentle = [sig, libc::SIGCONT];
        let signals: &[libc::c_int] = if force { &[libc::SIGKILL] } else { &gentle };
        // (SIGCONT: a stopped child cannot act on SIGTERM until it runs again.)
        for &s in signals {
            let _ = if e.pinned.is_some() { sys::kill(-pid, s) } else { send(pid, e, s, true) };
        }
    }
    if let Ok(Some(_)) = reap_locked(&mut t, pid, false) {
        if let Some(g) = t.groups.get_mut(&pid) {
            g.kill_at = kill_at;
        } else if let Some(e) = t.entries.get_mut(&pid) {
            e.orphan = Some(Orphan { kill_at }); // a pinned leader
        } else {
            return;
        }
    } else if let Some(e) = t.entries.get_mut(&pid) {
        e.orphan = Some(Orphan { kill_at });
    }
    drop(t);
    wake_reaper();
}

/// Start the reaper thread if it is not running yet. Returns whether it runs.
pub fn start_reaper() -> bool {
    let mut r = REAPER.lock().unwrap_or_else(|p| p.into_inner());
    if r.is_none() {
        *r = Reaper::start().ok();
        REAPER_RUNNING.store(r.is_some(), Ordering::SeqCst);
    }
    r.is_some()
}

/// Wake the reaper thread without taking any lock (callable while the
/// table is locked). Where no thread runs, orphans are swept by library calls.
fn wake_reaper_unlocked() {
    let fd = REAPER_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        sys::eventfd_signal(fd);
    }
}

fn wake_reaper() {
    if start_reaper() {
        wake_reaper_unlocked();
    } else {
        sweep_orphans();
    }
}

/// Reap orphans that have exited and SIGKILL those past their grace period.
/// The reaper thread does this on its own; the library also calls it where
/// the thread could not be started.
pub fn sweep_orphans() {
    if REAPER_RUNNING.load(Ordering::Relaxed) {
        return;
    }
    sweep(&mut table(), Instant::now());
}

fn sweep(t: &mut Table, now: Instant) {
    let me = getpid();
    let orphans: Vec<_> = t
        .entries
        .iter()
        .filter(|(_, e)| e.creator == me && (e.orphan.is_some() || e.pinned.is_some()))
        .map(|(p, _)| *p)
        .collect();
    for pid in orphans {
        let due = t.entries.get(&pid).and_then(|e| e.orphan.as_ref()).and_then(|o| o.kill_at).is_some_and(|at| at <= now);
        if due {
            if let Some(e) = t.entries.get_mut(&pid) {
                if let Some(o) = e.orphan.as_mut() {
                    o.kill_at = None;
                }
            }
            if let Some(e) = t.entries.get(&pid) {
                let _ = if e.pinned.is_some() { sys::kill(-pid, libc::SIGKILL) } else { send(pid, e, libc::SIGKILL, true) };
            }
        }
        // Reaping a leader whose group lives on moves the escalation to
        // the group record (see reap_locked).
        let _ = reap_locked(t, pid, false);
    }
    let groups: Vec<_> = t.groups.keys().copied().collect();
    for pgid in groups {
        let due = t.groups.get(&pgid).is_some_and(|g| g.creator == me && g.kill_at.is_some_and(|at| at <= now));
        if due {
            if let Some(g) = t.groups.get_mut(&pgid) {
                g.kill_at = None;
            }
            let _ = signal_group_locked(t, pgid, libc::SIGKILL);
        } else {
            group_alive(t, pgid); // forgets an empty group
        }
    }
}

/// Kill (SIGKILL, whole group where there is one) and reap every child that
/// `owner` started. Used when a Lua state closes. Blocks only for as long as
/// the kernel takes to deliver SIGKILL.
pub fn kill_owner(owner: Owner) {
    kill_matching(|o| o == owner);
}

fn kill_matching(pred: impl Fn(Owner) -> bool) {
    let me = getpid();
    let mut t = table();
    // Remote processes first, while their connections still run: start the
    // commands that stop them and give those a moment to get through. A
    // local end that has already exited needs no stop.
    let ended: Vec<_> = t
        .entries
        .iter()
        .filter(|(_, e)| e.creator == me && e.remote_stop.is_some() && e.orphan.is_none() && pred(e.owner))
        .map(|(p, _)| *p)
        .collect();
    for pid in ended {
        if let Some(e) = t.entries.get_mut(&pid) {
            let stop = e.remote_stop.take();
            if !matches!(reap_locked(&mut t, pid, false), Ok(Some(_))) {
                if let Some(e) = t.entries.get_mut(&pid) {
                    e.remote_stop = stop;
                }
            }
        }
    }
    let stops: Vec<_> = t
        .entries
        .iter_mut()
        .filter(|(_, e)| e.creator == me && e.remote_stop.is_some() && pred(e.owner))
        .filter_map(|(_, e)| e.remote_stop.take().map(|s| (e.owner, s.0)))
        .collect();
    // Stop commands already under way (started by a handle's finalizer, a
    // close() or a signal()) must get through too: the ssh master they use
    // is among the children killed below.
    let mut stoppers: Vec<_> =
        t.entries.iter().filter(|(_, e)| e.helper && e.creator == me && pred(e.owner)).map(|(p, _)| *p).collect();
    for (owner, argv) in stops {
        if let Ok(pid) = spawn_detached_locked(&mut t, argv, owner) {
            stoppers.push(pid);
        }
    }
    let deadline = Instant::now() + REMOTE_STOP_WAIT;
    while !stoppers.is_empty() && Instant::now() < deadline {
        stoppers.retain(|&pid| matches!(reap_locked(&mut t, pid, false), Ok(None)));
        if !stoppers.is_empty() {
            // Not holding the table meanwhile: the reaper and other states
            // go on while the stop commands get through.
            drop(t);
            std::thread::sleep(Duration::from_millis(5));
            t = table();
        }
    }
    let groups: Vec<_> = t.groups.iter().filter(|(_, g)| g.creator == me && pred(g.owner)).map(|(p, _)| *p).collect();
    for pgid in groups {
        if let Some(g) = t.groups.remove(&pgid) {
            let _ = sys::pidfd_signal(&g.pidfd, libc::SIGKILL, true);
        }
    }
    // Detached children go on: orphans now, reaped if they exit while we live.
    for e in t.entries.values_mut().filter(|e| e.creator == me && e.detached && pred(e.owner)) {
        e.orphan = Some(Orphan { kill_at: None });
    }
    let pids: Vec<_> =
        t.entries.iter().filter(|(_, e)| e.creator == me && !e.detached && pred(e.owner)).map(|(p, _)| *p).collect();
    for &pid in &pids {
        if let Some(e) = t.entries.get(&pid) {
            let _ = if e.pinned.is_some() { sys::kill(-pid, libc::SIGKILL) } else { send(pid, e, libc::SIGKILL, true) };
        }
    }
    for &pid in &pids {
        // Blocking: SIGKILL was sent, so this returns as soon as it lands.
        // A group whose leader is reaped here was sent SIGKILL as a whole.
        let _ = reap_locked(&mut t, pid, true);
        t.groups.remove(&pid);
    }
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

/// Kill and reap every child this process started (exit handlers).
pub fn kill_all() {
    kill_matching(|_| true);
}

extern "C" fn kill_all_at_exit() {
    // Runs from exit(): the Lua state may never be closed (os.exit(code)).
    // Never unwind out of an extern "C" function.
    let _ = std::panic::catch_unwind(|| kill_matching(|_| true));
}

/// The background thread that reaps abandoned children.
struct Reaper;

impl Reaper {
    fn start() -> io::Result<Reaper> {
        let wake_fd = sys::eventfd()?;
        let raw = wake_fd.as_raw_fd();
        std::thread::Builder::new().name("lua-exec-reaper".into()).spawn(move || reaper_loop(raw))?;
        // The thread runs for the rest of the process and reads `raw`, so the
        // descriptor is never closed once the thread exists.
        std::mem::forget(wake_fd);
        REAPER_FD.store(raw, Ordering::SeqCst);
        Ok(Reaper)
    }
}

fn reaper_loop(wake_fd: libc::c_int) {
    // This thread must never take a signal meant for the host's main thread.
    // SAFETY: a local, fully initialised signal set.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    loop {
        let mut fds = vec![libc::pollfd { fd: wake_fd, events: libc::POLLIN, revents: 0 }];
        let mut timeout: Option<Duration> = None;
        let mut wait_at_most = |d: Duration| timeout = Some(timeout.map_or(d, |t: Duration| t.min(d)));
        {
            let t = table();
            let now = Instant::now();
            for e in t.entries.values() {
                if e.pinned.is_some() {
                    wait_at_most(FALLBACK_POLL);
                }
                let Some(o) = &e.orphan else { continue };
                match &e.pidfd {
                    Some(fd) if e.pinned.is_none() => {
                        fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
                    }
                    _ => wait_at_most(FALLBACK_POLL),
                }
                if let Some(at) = o.kill_at {
                    wait_at_most(at.saturating_duration_since(now));
                }
            }
            for g in t.groups.values() {
                if let Some(at) = g.kill_at {
                    wait_at_most(at.saturating_duration_since(now));
                }
            }
        }
        let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32 + 1);
        // SAFETY: `fds` is a live Vec of initialised pollfd structs. Its
        // pidfds may be closed by another thread meanwhile: poll then
        // reports POLLNVAL, or an unrelated fd's event; either only causes
        // one more sweep, which checks everything under the lock.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        sys::eventfd_clear(wake_fd);
        sweep(&mut table(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::CommandSpec;
    use crate::core::os::spawn::{spawn, SpawnRequest, Stdio};

    fn start(cmd: &str) -> libc::pid_t {
        let mut req = SpawnRequest::new(CommandSpec::Shell(cmd.into()));
        req.stdin = Stdio::Null;
        req.stdout = Stdio::Null;
        req.stderr = Stdio::Null;
        let s = spawn(&req).unwrap();
        register(s.pid, 0, false, None);
        s.pid
    }

    fn gone(pid: libc::pid_t) -> bool {
        // Not our child any more (reaped) and not a zombie: /proc entry absent.
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        let pid = start("exit 3");
        let mut code = None;
        assert!(eventually(|| {
            code = try_reap(pid).unwrap();
            code.is_some()
        }));
        assert_eq!(code.map(ExitStatus::code), Some(3));
        assert_eq!(code.and_then(ExitStatus::signal), None);
        let pid = start("kill -TERM $$");
        assert!(eventually(|| {
            code = try_reap(pid).unwrap();
            code.is_some()
        }));
        assert_eq!(code.map(ExitStatus::code), Some(143));
        assert_eq!(code.and_then(ExitStatus::signal), Some(libc::SIGTERM), "told apart from exit 143");
    }

    #[test]
    fn signal_after_reap_is_refused() {
        let pid = start("exit 0");
        assert!(eventually(|| try_reap(pid).unwrap().is_some()));
        assert_eq!(signal(pid, libc::SIGTERM).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn abandoned_children_are_reaped_in_the_background() {
        let pid = start("sleep 30");
        let pidfd = crate::core::os::sys::pidfd_open(pid).unwrap().map(Arc::new);
        table().entries.get_mut(&pid).unwrap().pidfd = pidfd;
        abandon(pid, libc::SIGTERM);
        assert!(eventually(|| gone(pid)), "child {pid} still present");
    }

    #[test]
    fn abandoned_children_that_ignore_sigterm_get_sigkill() {
        let pid = start("trap '' TERM; sleep 30");
        std::thread::sleep(Duration::from_millis(100)); // let the trap install
        abandon(pid, libc::SIGTERM);
        assert!(eventually(|| gone(pid)), "child {pid} survived SIGTERM + grace");
    }

    #[test]
    fn kill_owner_ends_only_that_owners_children() {
        let owner = new_owner();
        let mut req = SpawnRequest::new(CommandSpec::Argv(vec!["sleep".into(), "30".into()]));
        req.stdout = Stdio::Null;
        let s = spawn(&req).unwrap();
        register(s.pid, owner, false, None);
        let other = start("sleep 30");
        kill_owner(owner);
        assert!(gone(s.pid));
        assert!(!gone(other));
        abandon(other, libc::SIGKILL);
    }

    #[test]
    fn live_counter_tracks_running_children() {
        let live = Arc::new(AtomicUsize::new(0));
        let mut req = SpawnRequest::new(CommandSpec::Shell("exit 0".into()));
        req.stdout = Stdio::Null;
        let s = spawn(&req).unwrap();
        register(s.pid, 0, false, Some(live.clone()));
        assert_eq!(live.load(Ordering::SeqCst), 1);
        assert!(eventually(|| try_reap(s.pid).unwrap().is_some()));
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    fn start_group(cmd: &str) -> libc::pid_t {
        let mut req = SpawnRequest::new(CommandSpec::Shell(cmd.into()));
        req.stdin = Stdio::Null;
        req.stdout = Stdio::Null;
        req.stderr = Stdio::Null;
        req.process_group = true;
        let s = spawn(&req).unwrap();
        let pidfd = sys::pidfd_open(s.pid).unwrap().map(Arc::new);
        register_child(Child {
            pid: s.pid,
            owner: 0,
            process_group: true,
            live: None,
            pidfd,
            vanished: false,
            outcome: None,
            detached: false,
        });
        s.pid
    }

    #[test]
    fn a_group_stays_reachable_after_its_leader_was_reaped_and_never_after_it_emptied() {
        let pid = start_group("sleep 30 & exit 7");
        let mut code = None;
        assert!(eventually(|| {
            code = try_reap(pid).unwrap();
            code.is_some()
        }));
        assert_eq!(code.map(ExitStatus::code), Some(7));
        assert!(sys::group_has_members(pid, pid), "the background sleep is still in the group");
        assert!(signal_group(pid, libc::SIGKILL), "the group was reachable");
        // Once the killed member is reaped by its new parent, the group is
        // empty, and nothing is signalled any more.
        assert!(eventually(|| !signal_group(pid, 0)));
        assert!(!signal_group(pid, libc::SIGTERM), "an empty group is never signalled");
    }

    #[test]
    fn abandoning_a_group_kills_members_that_ignore_sigterm() {
        let pid = start_group("(trap '' TERM; sleep 30) & wait");
        std::thread::sleep(Duration::from_millis(200)); // let the trap install
        abandon(pid, libc::SIGTERM);
        assert!(eventually(|| !sys::group_has_members(pid, pid) && gone(pid)), "group {pid} survived");
    }

    #[test]
    fn a_forked_copy_never_signals_the_parents_children() {
        let pid = start("sleep 30");
        // The child of fork() may find the table's lock held by another test
        // thread at the moment of the fork (and wait for ever): then try again.
        let mut done = false;
        for _ in 0..5 {
            // SAFETY: the child only calls into this module and _exit.
            let child = unsafe { libc::fork() };
            if child == 0 {
                abandon(pid, libc::SIGKILL);
                let _ = signal(pid, libc::SIGKILL);
                kill_all();
                // SAFETY: ends the forked copy without running exit handlers.
                unsafe { libc::_exit(0) };
            }
            let finished = eventually(|| {
                let mut status = 0;
                // SAFETY: waits for our own forked child.
                unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) == child }
            });
            if finished {
                done = true;
                break;
            }
            let _ = sys::kill(child, libc::SIGKILL);
            // SAFETY: reaps the forked child we just killed.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        }
        assert!(done, "the forked copy never finished");
        assert!(!gone(pid) && try_reap(pid).unwrap().is_none(), "the forked copy ended the parent's child");
        abandon(pid, libc::SIGKILL);
    }
}
