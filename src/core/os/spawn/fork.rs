//! Starting a child with `fork` + `execve`, where glibc's posix_spawn lacks
//! the two extensions the fast path needs (`addclosefrom_np`, glibc 2.34,
//! and `addchdir_np`, 2.29: Debian 11, Ubuntu 20.04, Amazon Linux 2, musl),
//! or when the `LUA_EXEC_FORK_SPAWN` test switch forces it.
//!
//! The child gets exactly what the posix_spawn path gives it: default
//! signal dispositions and an empty mask, a new session or process group if
//! asked, the terminal or the pipe ends on 0, 1 and 2, nothing else open,
//! the working directory; and what only this path can give (attrs.rs:
//! resource limits, identity, umask, niceness, death with the parent,
//! descriptors beyond 0-2). Between `fork` and `execve` it only makes system
//! calls (no allocation, no locks: another thread of the host may have held
//! one at the fork). A failure there is reported to the parent through a
//! close-on-exec pipe as the step that failed, its argument and the errno,
//! so that, as with posix_spawn, a program that cannot run is an error of
//! `start()` and not a child exiting 127, and one whose `uid` cannot be set
//! says so.
//!
//! The cost: `fork` copies the parent's page tables, so starting a child
//! takes longer the bigger the Lua heap is (posix_spawn uses CLONE_VFORK).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::attrs::{self, ChildFailed, Step};
use super::plan::ChildPlan;
use crate::core::os::sys;

/// What the child writes on the report pipe when a step fails: the step,
/// its argument, the errno.
const REPORT_LEN: usize = 12;

/// Start `plan`: `Ok(Ok(pid))`, `Ok(Err(failed))` when the child could not
/// become the program (a step before exec, or exec itself, failed: it has
/// been reaped), `Err` when no child could be made.
pub(super) fn spawn(plan: &ChildPlan) -> io::Result<Result<libc::pid_t, ChildFailed>> {
    let (report_r, report_w) = sys::pipe()?;
    // No descriptor the child is given (`fds`) may land on the report pipe.
    let report_w = match plan.extra {
        Some(x) => attrs::moved_above(report_w, x.above)?,
        None => report_w,
    };
    let max_fd = open_max();
    // SAFETY: sigset_t is plain data; sigfillset/sigprocmask get valid pointers.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above. All signals are blocked around fork so that no
    // handler of the host runs in the child before they are reset.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: fork has no pointer arguments. The child runs `child()` only,
    // which makes system calls and never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child, with every pointer of `plan` valid (the
        // parent's memory was copied) and `report_w` open.
        unsafe { child(plan, report_w.as_raw_fd(), max_fd) }
    }
    let fork_err = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(fork_err);
    }
    drop(report_w);
    // The child writes what failed if it fails before exec; exec closes
    // the pipe (close-on-exec), which reads as end of file.
    let mut buf = [0u8; REPORT_LEN];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reads into the remaining part of `buf`.
        match sys::cvt_r(|| unsafe { libc::read(report_r.as_raw_fd(), buf[got..].as_mut_ptr().cast(), buf.len() - got) }) {
            Ok(n) if n > 0 => got += n as usize,
            _ => break,
        }
    }
    if got == buf.len() {
        let mut status = 0;
        // SAFETY: waits for our own child, which has exited or is exiting.
        let _ = sys::cvt_r(|| unsafe { libc::waitpid(pid, &mut status, 0) });
        let word = |i: usize| i32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        return Ok(Err(ChildFailed { step: Step::from_code(word(0)), arg: word(4), errno: word(8) }));
    }
    Ok(Ok(pid))
}

/// The highest descriptor number that can be open (for closing them all
/// where close_range is missing).
fn open_max() -> RawFd {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
        lim.rlim_cur.min(1 << 20) as RawFd
    } else {
        1 << 16
    }
}

/// The child's side: make it what `plan` says and exec, or report the
/// step that failed on `report` and exit.
///
/// # Safety
/// Only in a freshly forked child; `plan`'s pointers must be valid.
unsafe fn child(plan: &ChildPlan, report: RawFd, max_fd: RawFd) -> ! {
    let fail = |step: Step, arg: i32| -> ! {
        let e = *libc::__errno_location();
        let mut bytes = [0u8; REPORT_LEN];
        bytes[..4].copy_from_slice(&(step as i32).to_ne_bytes());
        bytes[4..8].copy_from_slice(&arg.to_ne_bytes());
        bytes[8..].copy_from_slice(&e.to_ne_bytes());
        libc::write(report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    };
    // Default dispositions for every signal (a host's ignored SIGPIPE must
    // not reach the program); the mask is emptied just before exec.
    reset_dispositions();
    if plan.new_session {
        if libc::setsid() < 0 {
            fail(Step::Session, 0);
        }
    } else if plan.process_group && libc::setpgid(0, 0) < 0 {
        fail(Step::Group, 0);
    }
    // The pipe ends are above 2 (sys::above_stdio), so no dup2 below
    // overwrites one that is still to be moved.
    for &(target, fd) in &plan.dups {
        if libc::dup2(fd, target) < 0 {
            fail(Step::Stdio, target);
        }
    }
    if let Some(path) = plan.pty {
        // A session leader without a terminal that opens one (without
        // O_NOCTTY) gets it as its controlling terminal.
        let fd = libc::open(path.as_ptr(), libc::O_RDWR);
        if fd < 0 {
            fail(Step::Terminal, 0);
        }
        for target in 0..3 {
            if fd != target && libc::dup2(fd, target) < 0 {
                fail(Step::Terminal, 0);
            }
        }
        if fd > 2 {
            libc::close(fd);
        }
    }
    // The `fds` onto their numbers (their sources sit above every target).
    let kept: &[(RawFd, RawFd)] = match plan.extra {
        Some(x) => {
            if let Err((step, arg)) = x.place_fds() {
                fail(step, arg);
            }
            &x.fds
        }
        None => &[],
    };
    // Nothing but 0, 1, 2, the `fds` and the report pipe (close-on-exec,
    // above them all) stays open.
    let mut first = 3;
    for &(target, _) in kept {
        close_between(first, target - 1, max_fd);
        first = target + 1;
    }
    close_between(first, report - 1, max_fd);
    close_between(report + 1, RawFd::MAX, max_fd);
    // Limits, umask, niceness, identity, death with the parent.
    if let Some(x) = plan.extra {
        if let Err((step, arg)) = x.apply() {
            fail(step, arg);
        }
    }
    // (After the identity: a directory the new user may not enter fails.)
    if let Some(dir) = plan.dir {
        if libc::chdir(dir.as_ptr()) < 0 {
            fail(Step::Dir, 0);
        }
    }
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    libc::execve(plan.program.as_ptr(), plan.argv, plan.envp);
    fail(Step::Exec, 0)
}

/// Close every descriptor from `first` to `last` (both included): one
/// `close_range`, or where it is missing (Linux < 5.9) one `close` each, up
/// to `max_fd`. In the child only.
unsafe fn close_between(first: RawFd, last: RawFd, max_fd: RawFd) {
    if first > last {
        return;
    }
    if libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) != 0 {
        for fd in first..=last.min(max_fd) {
            libc::close(fd);
        }
    }
}

/// Every signal to SIG_DFL, glibc's internal ones (32, 33) included: its
/// `sigaction` refuses those, so the system call is made directly (what
/// posix_spawn's child does too). In the child only.
unsafe fn reset_dispositions() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        // The kernel's struct sigaction on these architectures.
        #[repr(C)]
        struct KernelSigaction {
            handler: usize,
            flags: libc::c_ulong,
            restorer: usize,
            mask: u64,
        }
        let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
        for sig in sys::SIGNAL_NUMBERS {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(libc::SYS_rt_sigaction, sig, &dfl as *const KernelSigaction, 0usize, 8usize);
            }
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn plan_for<'a>(program: &'a CString, argv: &[*const libc::c_char], dir: Option<&'a CString>) -> ChildPlan<'a> {
        extern "C" {
            static environ: *const *const libc::c_char;
        }
        ChildPlan {
            program,
            argv: argv.as_ptr(),
            // SAFETY: read for its address only.
            envp: unsafe { environ },
            dups: Vec::new(),
            pty: None,
            dir: dir.map(|d| d.as_c_str()),
            process_group: true,
            new_session: false,
            extra: None,
        }
    }

    fn wait(pid: libc::pid_t) -> libc::c_int {
        let mut status = 0;
        // SAFETY: our own child; a valid status pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        status
    }

    #[test]
    fn the_fork_path_runs_the_program_in_its_directory_and_group() {
        let sh = CString::new("/bin/sh").unwrap();
        let a0 = CString::new("sh").unwrap();
        let a1 = CString::new("-c").unwrap();
        let a2 = CString::new("[ \"$(pwd)\" = / ] && [ \"$(ps -o pgid= -p $$ | tr -d ' ')\" = $$ ] && exit 7").unwrap();
        let argv = [a0.as_ptr(), a1.as_ptr(), a2.as_ptr(), std::ptr::null()];
        let root = CString::new("/").unwrap();
        let pid = spawn(&plan_for(&sh, &argv, Some(&root))).unwrap().unwrap();
        let status = wait(pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7, "status {status}");
    }

    #[test]
    fn a_program_that_cannot_run_is_an_error_not_a_child_exiting_127() {
        let missing = CString::new("/no/such/program").unwrap();
        let argv = [missing.as_ptr(), std::ptr::null()];
        let failed = |step| Err(ChildFailed { step, arg: 0, errno: libc::ENOENT });
        assert_eq!(spawn(&plan_for(&missing, &argv, None)).unwrap(), failed(Step::Exec));
        let sh = CString::new("/bin/sh").unwrap();
        let argv = [sh.as_ptr(), std::ptr::null()];
        let nodir = CString::new("/no/such/dir").unwrap();
        assert_eq!(spawn(&plan_for(&sh, &argv, Some(&nodir))).unwrap(), failed(Step::Dir));
    }
}
