//! Children as the kernel shows them: pidfds, an exit read without
//! reaping (waitid), and the members of a process group (/proc).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::cvt_r;


/// `pidfd_open(2)` (pidfds are always close-on-exec): `Ok(None)` where the kernel lacks it (or when the
/// `LUA_EXEC_NO_PIDFD` test switch is set), so callers fall back to polling.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<Option<OwnedFd>> {
    if pidfd_disabled() {
        return Ok(None);
    }
    // SAFETY: pidfd_open takes no pointers; the result is checked.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret >= 0 {
        // SAFETY: `ret` is a new pidfd owned by nobody else.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // ESRCH: the process is gone already (someone else reaped it).
        Some(libc::ESRCH) => Err(err),
        // No pidfds here (ENOSYS, EPERM under seccomp) or none to spare
        // (EMFILE): callers fall back to polling, which is always correct.
        _ => Ok(None),
    }
}

fn pidfd_disabled() -> bool {
    static DISABLED: once_cell::sync::Lazy<bool> =
        once_cell::sync::Lazy::new(|| std::env::var_os("LUA_EXEC_NO_PIDFD").is_some());
    *DISABLED
}

/// `pidfd_send_signal(2)` flag (Linux 6.9): signal the process group of the
/// pidfd's process. The group is named by the kernel's pid object, not by a
/// number, so it can never reach a group that reused the number.
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// Send `sig` through a pidfd: to the process, or to its whole process
/// group when `group`. A pidfd names one process for good, so a reaped and
/// reused pid is never hit. ESRCH: nothing is left to signal.
pub fn pidfd_signal(pidfd: &OwnedFd, sig: libc::c_int, group: bool) -> io::Result<()> {
    let flags = if group { PIDFD_SIGNAL_PROCESS_GROUP } else { 0 };
    let null: *const libc::siginfo_t = std::ptr::null();
    // SAFETY: a NULL siginfo is allowed; the pidfd is open for the call.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, null, flags) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether this kernel signals process groups through pidfds (Linux 6.9+).
/// Asked once, with signal 0 to the group our pid would lead: ESRCH (we
/// lead none) still means the flag is known; older kernels say EINVAL.
pub fn pidfd_group_signals() -> bool {
    static SUPPORTED: once_cell::sync::Lazy<bool> = once_cell::sync::Lazy::new(|| {
        // SAFETY: getpid cannot fail.
        match pidfd_open(unsafe { libc::getpid() }) {
            Ok(Some(fd)) => match pidfd_signal(&fd, 0, true) {
                Ok(()) => true,
                Err(e) => e.raw_os_error() == Some(libc::ESRCH),
            },
            _ => false,
        }
    });
    *SUPPORTED
}

/// The exit status of `pid` if it has exited, without reaping it
/// (`waitid(WNOWAIT)`): the zombie keeps its pid, and so its process group
/// id, reserved.
pub fn peek_exit(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    // SAFETY: siginfo_t is plain data, valid when zeroed.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a live siginfo_t for waitid to fill.
    cvt_r(|| unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) })?;
    // SAFETY: waitid filled `info` for a child event (or left it zeroed).
    let (found, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if found == 0 {
        return Ok(None);
    }
    // Rebuild a waitpid-style status for the shell convention.
    Ok(Some(match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        _ => status & 0x7f,
    }))
}

/// Whether a process other than `except` that is not a zombie belongs to
/// process group `pgid` (read from /proc: there is no system call for it).
pub fn group_has_members(pgid: libc::pid_t, except: libc::pid_t) -> bool {
    let dir = match std::fs::read_dir("/proc") {
        Ok(d) => d,
        Err(_) => return false,
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let pid: libc::pid_t = match name.to_str().and_then(|n| n.parse().ok()) {
            Some(p) => p,
            None => continue,
        };
        if pid == except {
            continue;
        }
        let stat = match std::fs::read(format!("/proc/{pid}/stat")) {
            Ok(s) => s,
            Err(_) => continue,
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
        let after = match stat.iter().rposition(|&b| b == b')') {
            Some(i) => &stat[i + 1..],
            None => continue,
        };
        let text = String::from_utf8_lossy(after);
        let mut fields = text.split_ascii_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<libc::pid_t>().ok());
        if pgrp == Some(pgid) && state != Some("Z") && state != Some("X") {
            return true;
        }
    }
    false
}
