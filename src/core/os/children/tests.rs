use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use super::table::table;
use super::*;
use crate::core::os::sys;
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
