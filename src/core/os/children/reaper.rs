//! The background thread that reaps abandoned children: it waits on their
//! pidfds (or polls without them), sends SIGKILL when a grace period is
//! over, and reaps, whether or not Lua ever calls the library again.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::table::{getpid, group_alive, reap_locked, send, signal_group_locked, table, Table};
use super::FALLBACK_POLL;
use crate::core::os::sys;

/// The reaper thread, once it could be started. Starting a thread can fail
/// (RLIMIT_NPROC counts threads too); until it runs, orphans are swept by
/// `sweep_orphans` from the library's own calls instead.
pub(super) static REAPER: Mutex<Option<Reaper>> = Mutex::new(None);

pub(super) static REAPER_RUNNING: AtomicBool = AtomicBool::new(false);

/// The reaper's eventfd once it runs (it is never closed after that).
pub(super) static REAPER_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

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
pub(super) fn wake_reaper_unlocked() {
    let fd = REAPER_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        sys::eventfd_signal(fd);
    }
}

pub(super) fn wake_reaper() {
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

pub(super) fn sweep(t: &mut Table, now: Instant) {
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

/// The background thread that reaps abandoned children.
pub(super) struct Reaper;

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

pub(super) fn reaper_loop(wake_fd: libc::c_int) {
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
