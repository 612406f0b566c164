//! The ends the library gives its children: a closed or collected handle
//! (`abandon`: the signal now, SIGKILL after the grace, the reaper
//! finishes), the Lua state's end (`kill_owner`) and the process's exit
//! (`kill_all`, an atexit handler for `os.exit`).

use std::sync::Once;
use std::time::{Duration, Instant};

use super::on_end::spawn_detached_locked;
use super::reaper::wake_reaper;
use super::table::{reap_locked, send, signal_group_locked, table, getpid, Orphan};
use super::{Owner, GRACE, REMOTE_STOP_WAIT};
use crate::core::os::sys;

pub(super) static ATEXIT: Once = Once::new();

/// Install the exit handler that ends our children, once, with the first child.
pub(super) fn arm_exit_handler() {
    ATEXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function that never unwinds.
        unsafe { libc::atexit(kill_all_at_exit) };
    });
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

/// Kill (SIGKILL, whole group where there is one) and reap every child that
/// `owner` started. Used when a Lua state closes. Blocks only for as long as
/// the kernel takes to deliver SIGKILL.
pub fn kill_owner(owner: Owner) {
    kill_matching(|o| o == owner);
}

pub(super) fn kill_matching(pred: impl Fn(Owner) -> bool) {
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

/// Kill and reap every child this process started (exit handlers).
pub fn kill_all() {
    kill_matching(|_| true);
}

pub(super) extern "C" fn kill_all_at_exit() {
    // Runs from exit(): the Lua state may never be closed (os.exit(code)).
    // Never unwind out of an extern "C" function.
    let _ = std::panic::catch_unwind(|| kill_matching(|_| true));
}
