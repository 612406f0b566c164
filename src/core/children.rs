//! The process-wide table of our children, and the reaper for abandoned ones.
//!
//! Every child we start is entered here until it is reaped, and reaping
//! (`waitpid`) happens only through this table, under its lock. That gives
//! three guarantees:
//! - a pid is signalled only while it is still our unreaped child, so a
//!   signal can never hit an unrelated process that reused the pid;
//! - a child whose handle was closed or collected before it exited is handed
//!   to a background reaper thread, which sends SIGKILL after a grace period
//!   and reaps it, whether or not Lua ever runs again: no zombies;
//! - when the Lua state closes, or the process exits without closing it
//!   (`os.exit(code)`), every child still running is killed and reaped.
//!
//! No SIGCHLD handler is ever installed: the host owns its signal handlers.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use super::command::{Bytes, CommandSpec};
use super::spawn::{self, SpawnRequest, Stdio};

/// How long a child that was sent SIGTERM by `close()` or a dropped handle
/// gets before SIGKILL.
pub const GRACE: Duration = Duration::from_millis(1000);

/// How long the commands that stop remote processes get at exit.
const REMOTE_STOP_WAIT: Duration = Duration::from_secs(3);

/// How often the reaper polls children for which the kernel gave no pidfd.
const FALLBACK_POLL: Duration = Duration::from_millis(20);

/// Identifies the owner (a Lua state) of a child.
pub type Owner = u64;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

pub fn new_owner() -> Owner {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// Convert a `waitpid` status to the exit code a shell would report:
/// the exit status, or 128 + N for a child killed by signal N.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        // Stopped/continued are never requested (no WUNTRACED), but be total.
        128 + libc::WSTOPSIG(status)
    }
}

struct Entry {
    owner: Owner,
    /// The pid that registered the entry: after a fork of the host, the copy
    /// of this table in the forked process must not touch our children.
    creator: libc::pid_t,
    process_group: bool,
    /// Live-process counter of the executor that started it.
    live: Option<Arc<AtomicUsize>>,
    /// Set once the handle is gone and the reaper owns the child.
    orphan: Option<Orphan>,
    /// For the local end of a remote process (an `ssh` client): commands
    /// that end the remote side, (gently, at once). Ending the local client
    /// alone would leave the remote command running.
    remote_stop: Option<(Vec<Bytes>, Vec<Bytes>)>,
}

struct Orphan {
    pidfd: Option<OwnedFd>,
    /// When to escalate to SIGKILL; `None` once SIGKILL was sent.
    kill_at: Option<Instant>,
}

struct Table {
    entries: HashMap<libc::pid_t, Entry>,
}

static TABLE: Lazy<Mutex<Table>> = Lazy::new(|| Mutex::new(Table { entries: HashMap::new() }));
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

/// Enter a freshly spawned child.
/// Install the exit handler that ends our children, once, with the first child.
fn arm_exit_handler() {
    ATEXIT.call_once(|| unsafe {
        libc::atexit(kill_all_at_exit);
    });
}

pub fn register(pid: libc::pid_t, owner: Owner, process_group: bool, live: Option<Arc<AtomicUsize>>) {
    arm_exit_handler();
    if let Some(l) = &live {
        l.fetch_add(1, Ordering::SeqCst);
    }
    let creator = unsafe { libc::getpid() };
    table().entries.insert(pid, Entry { owner, creator, process_group, live, orphan: None, remote_stop: None });
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
    let pidfd = super::sys::pidfd_open(s.pid).ok().flatten();
    let orphan = Orphan { pidfd, kill_at: Some(Instant::now() + Duration::from_secs(10)) };
    let creator = unsafe { libc::getpid() };
    t.entries.insert(
        s.pid,
        Entry { owner, creator, process_group: false, live: None, orphan: Some(orphan), remote_stop: None },
    );
    Ok(s.pid)
}

/// Reap `pid` if it has exited. `Ok(Some(code))` once, then the entry is gone.
pub fn try_reap(pid: libc::pid_t) -> io::Result<Option<i32>> {
    let mut t = table();
    if !t.entries.contains_key(&pid) {
        return Err(io::Error::new(io::ErrorKind::NotFound, "not a live child of this library"));
    }
    reap_locked(&mut t, pid, false)
}

fn reap_locked(t: &mut Table, pid: libc::pid_t, block: bool) -> io::Result<Option<i32>> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    let r = loop {
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break r;
    };
    match r {
        0 => Ok(None),
        -1 => {
            // ECHILD: someone else in this process reaped it (a host that calls
            // waitpid(-1)). The exit code is lost; forget the entry.
            let err = io::Error::last_os_error();
            forget(t, pid);
            Err(err)
        }
        _ => {
            // The local ssh of a remote process was killed (by anyone): the
            // remote command would go on, so end it too.
            let stop = t.entries.get_mut(&pid).and_then(|e| e.remote_stop.take());
            let owner = t.entries.get(&pid).map(|e| e.owner).unwrap_or(0);
            forget(t, pid);
            if let Some((gentle, _)) = stop {
                if libc::WIFSIGNALED(status) && spawn_detached_locked(t, gentle, owner).is_ok() {
                    wake_reaper_unlocked();
                }
            }
            Ok(Some(exit_code(status)))
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

/// Send `sig` to the child (to its whole group if it leads one). Fails with
/// ESRCH if the child was already reaped.
pub fn signal(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    let t = table();
    match t.entries.get(&pid) {
        Some(e) => send(pid, e.process_group, sig),
        None => Err(io::Error::from_raw_os_error(libc::ESRCH)),
    }
}

fn send(pid: libc::pid_t, group: bool, sig: libc::c_int) -> io::Result<()> {
    let target = if group { -pid } else { pid };
    let r = unsafe { libc::kill(target, sig) };
    if r == -1 {
        let err = io::Error::last_os_error();
        // A group whose members all exited: fall back to the leader (a zombie
        // still counts as our child).
        if group && err.raw_os_error() == Some(libc::ESRCH) && unsafe { libc::kill(pid, sig) } == 0 {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}

/// The handle of a child is gone before the child was reaped: send SIGTERM
/// (SIGKILL when `force`) and let the reaper finish it off without blocking
/// the caller. `pidfd` lets the reaper sleep until the exit.
pub fn abandon(pid: libc::pid_t, pidfd: Option<OwnedFd>, force: bool) {
    let mut t = table();
    let (group, owner, stop) = match t.entries.get_mut(&pid) {
        Some(e) => (e.process_group, e.owner, e.remote_stop.take()),
        None => return,
    };
    if let Some((gentle, forced)) = stop {
        let _ = spawn_detached_locked(&mut t, if force { forced } else { gentle }, owner);
    }
    let _ = send(pid, group, if force { libc::SIGKILL } else { libc::SIGTERM });
    if !force {
        // A stopped child cannot act on SIGTERM until it runs again.
        let _ = send(pid, group, libc::SIGCONT);
    }
    if let Ok(Some(_)) = reap_locked(&mut t, pid, false) {
        return;
    }
    if let Some(e) = t.entries.get_mut(&pid) {
        e.orphan = Some(Orphan { pidfd, kill_at: if force { None } else { Some(Instant::now() + GRACE) } });
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
        let one: u64 = 1;
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

fn wake_reaper() {
    if start_reaper() {
        if let Some(r) = REAPER.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            r.wake();
        }
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
    let orphans: Vec<_> = t.entries.iter().filter(|(_, e)| e.orphan.is_some()).map(|(p, _)| *p).collect();
    for pid in orphans {
        if let Ok(Some(_)) | Err(_) = reap_locked(t, pid, false) {
            continue;
        }
        if let Some(e) = t.entries.get_mut(&pid) {
            let group = e.process_group;
            if let Some(o) = e.orphan.as_mut() {
                if o.kill_at.is_some_and(|at| at <= now) {
                    o.kill_at = None;
                    let _ = send(pid, group, libc::SIGKILL);
                }
            }
        }
    }
}

/// Kill (SIGKILL, whole group where there is one) and reap every child that
/// `owner` started. Used when a Lua state closes. Blocks only for as long as
/// the kernel takes to deliver SIGKILL.
pub fn kill_owner(owner: Owner) {
    kill_matching(|e| e.owner == owner);
}

fn kill_matching(pred: impl Fn(&Entry) -> bool) {
    let me = unsafe { libc::getpid() };
    let mut t = table();
    // Remote processes first, while their connections still run: start the
    // commands that stop them and give those a moment to get through. A
    // local end that has already exited needs no stop.
    let ended: Vec<_> = t
        .entries
        .iter()
        .filter(|(_, e)| e.creator == me && e.remote_stop.is_some() && e.orphan.is_none() && pred(e))
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
        .filter(|(_, e)| e.creator == me && e.remote_stop.is_some() && pred(e))
        .filter_map(|(_, e)| e.remote_stop.take().map(|s| (e.owner, s.0)))
        .collect();
    let mut stoppers = Vec::new();
    for (owner, argv) in stops {
        if let Ok(pid) = spawn_detached_locked(&mut t, argv, owner) {
            stoppers.push(pid);
        }
    }
    let deadline = Instant::now() + REMOTE_STOP_WAIT;
    while !stoppers.is_empty() && Instant::now() < deadline {
        stoppers.retain(|&pid| matches!(reap_locked(&mut t, pid, false), Ok(None)));
        if !stoppers.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let pids: Vec<_> = t
        .entries
        .iter()
        .filter(|(_, e)| e.creator == me && pred(e))
        .map(|(p, e)| (*p, e.process_group))
        .collect();
    for &(pid, group) in &pids {
        let _ = send(pid, group, libc::SIGKILL);
    }
    for &(pid, _) in &pids {
        let _ = reap_locked(&mut t, pid, true);
    }
}

/// How many children are in the table (live or awaiting the reaper).
pub fn count() -> usize {
    table().entries.len()
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
struct Reaper {
    wake_fd: OwnedFd,
}

impl Reaper {
    fn start() -> io::Result<Reaper> {
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let wake_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = wake_fd.as_raw_fd();
        // The thread runs for the rest of the process and reads `raw`, so the
        // descriptor is never closed once the thread exists.
        std::thread::Builder::new().name("lua-exec-reaper".into()).spawn(move || reaper_loop(raw))?;
        REAPER_FD.store(raw, Ordering::SeqCst);
        Ok(Reaper { wake_fd })
    }

    fn wake(&self) {
        let one: u64 = 1;
        unsafe { libc::write(self.wake_fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

fn reaper_loop(wake_fd: libc::c_int) {
    // This thread must never take a signal meant for the host's main thread.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    loop {
        let mut fds = vec![libc::pollfd { fd: wake_fd, events: libc::POLLIN, revents: 0 }];
        let mut timeout: Option<Duration> = None;
        {
            let t = table();
            let now = Instant::now();
            for o in t.entries.values().filter_map(|e| e.orphan.as_ref()) {
                match &o.pidfd {
                    Some(fd) => fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }),
                    None => timeout = Some(timeout.map_or(FALLBACK_POLL, |t| t.min(FALLBACK_POLL))),
                }
                if let Some(at) = o.kill_at {
                    let left = at.saturating_duration_since(now);
                    timeout = Some(timeout.map_or(left, |t| t.min(left)));
                }
            }
        }
        let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32 + 1);
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let mut buf = 0u64; // clear the eventfd
        unsafe { libc::read(wake_fd, (&mut buf as *mut u64).cast(), 8) };

        sweep(&mut table(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::CommandSpec;
    use crate::core::spawn::{spawn, SpawnRequest, Stdio};

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
        assert_eq!(code, Some(3));
        let pid = start("kill -TERM $$");
        assert!(eventually(|| {
            code = try_reap(pid).unwrap();
            code.is_some()
        }));
        assert_eq!(code, Some(143));
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
        abandon(pid, crate::core::sys::pidfd_open(pid).unwrap(), false);
        assert!(eventually(|| gone(pid)), "child {pid} still present");
    }

    #[test]
    fn abandoned_children_that_ignore_sigterm_get_sigkill() {
        let pid = start("trap '' TERM; sleep 30");
        std::thread::sleep(Duration::from_millis(100)); // let the trap install
        abandon(pid, None, false);
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
        abandon(other, None, true);
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
}
