//! Thin, safe wrappers over the few system calls the core needs.
//!
//! Everything here returns `io::Result` and keeps `errno` handling in one
//! place, so the rest of the core never touches raw return codes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Turn a `-1` return into the current `errno`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A pipe whose two ends are close-on-exec and numbered 3 or above.
///
/// Ends below 3 happen when the host closed one of its standard streams; a
/// child end that already sits on 0, 1 or 2 would keep CLOEXEC after
/// `dup2(fd, fd)` (a no-op) and vanish at exec, so such ends are moved up.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// A connected Unix stream socket pair, close-on-exec, both ends above 2.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(io::Error::from)?;
    Ok((above_stdio(a)?, above_stdio(b)?))
}

/// `send` on a socket without SIGPIPE (MSG_NOSIGNAL): the socket
/// counterpart of `write_nosigpipe`, with no signal mask to juggle.
pub fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is a live slice of `buf.len()` bytes.
    nonblocking_write(|| unsafe {
        libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
    })
}

/// Run one nonblocking write system call, retried on EINTR: the bytes
/// written, `None` when the descriptor is full (EAGAIN), or the error.
fn nonblocking_write(mut op: impl FnMut() -> isize) -> io::Result<Option<usize>> {
    loop {
        let n = op();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// Return `fd` unchanged if it is 3 or above, else a CLOEXEC duplicate that is.
pub fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl has no pointer arguments; the result is checked.
    let dup = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `dup` was just created by F_DUPFD_CLOEXEC and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Clear O_NONBLOCK (a pipe end handed to a child, which expects blocking I/O).
pub fn set_blocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl has no pointer arguments; the results are checked.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK != 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// Open `path` for a child's stdin (`read`) or output: close-on-exec; an
/// output is created (mode 0666 less the umask) and truncated, or appended to.
pub fn open_for_child(path: &std::path::Path, read: bool, append: bool) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    if read {
        o.read(true);
    } else if append {
        o.append(true).create(true);
    } else {
        o.write(true).create(true).truncate(true);
    }
    // (std opens with O_CLOEXEC already; the flag documents the intent.)
    let f = o.custom_flags(libc::O_CLOEXEC).mode(0o666).open(path)?;
    Ok(OwnedFd::from(f))
}

/// Open `/dev/null` for reading and writing, close-on-exec.
pub fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated literal.
    let fd = cvt(unsafe {
        libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC)
    })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Pipe size a bulk stream is given (see `grow_pipe`).
pub const BULK_PIPE_SIZE: libc::c_int = 256 * 1024;

/// Give a pipe that carries bulk data a bigger kernel buffer, so that the
/// writer blocks (and both sides switch) four times less often: measured
/// here, 64 KiB pipes move about 1.4 GiB/s and 256 KiB pipes about 4 GiB/s.
/// Only done once a stream proves to be bulk, because the kernel counts
/// pipe pages per user and shrinks *every new pipe* of a user who has too
/// many. Failure (the per-user limit) is harmless and ignored.
pub fn grow_pipe(fd: RawFd) {
    // SAFETY: fcntl has no pointer arguments; failure is harmless (the pipe keeps its size).
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, BULK_PIPE_SIZE) };
}

/// Fault in the pages under `buf` for writing, all in one call, before a
/// read() fills it (MADV_POPULATE_WRITE: contents untouched). Where the
/// kernel lacks it (before Linux 5.14: EINVAL) the read faults them in
/// itself, as it always did.
pub fn prefault(buf: &mut [std::mem::MaybeUninit<u8>]) {
    // SAFETY: sysconf has no pointer arguments.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    let start = buf.as_ptr() as usize / page * page;
    let end = buf.as_ptr() as usize + buf.len();
    // SAFETY: [start, end) is `buf` widened to the page holding its first
    // byte, which is mapped (part of it is `buf`); populating changes no
    // contents.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) };
}

/// Set O_NONBLOCK on a descriptor whose flags are otherwise the defaults of
/// a fresh pipe end (saves the F_GETFL of `set_nonblocking`).
pub fn set_nonblocking_fresh(fd: RawFd, access: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl has no pointer arguments; the result is checked.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, access | libc::O_NONBLOCK) })?;
    Ok(())
}

#[cfg(test)]
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl has no pointer arguments; the result is checked.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: fcntl has no pointer arguments; the result is checked.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// Outcome of one nonblocking read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    Eof,
    WouldBlock,
}

pub fn read_nonblocking(fd: RawFd, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return Ok(ReadOutcome::Data(n as usize));
        }
        if n == 0 {
            return Ok(ReadOutcome::Eof);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(ReadOutcome::WouldBlock),
            // A pseudo-terminal's master reads EIO once every descriptor of
            // its other side is closed (the child and its children are
            // gone): that is its end of file. Pipes never give EIO.
            Some(libc::EIO) => return Ok(ReadOutcome::Eof),
            _ => return Err(err),
        }
    }
}

/// A new pseudo-terminal: the master (close-on-exec, nonblocking) and the
/// path of its other side, which the child opens (becoming its controlling
/// terminal, as a session leader without one), with window size `rows` x `cols`.
pub fn open_pty(rows: u16, cols: u16) -> io::Result<(OwnedFd, std::ffi::CString)> {
    // SAFETY: posix_openpt has no pointer arguments; the result is checked.
    let fd = cvt(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let master = above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })?;
    let m = master.as_raw_fd();
    // SAFETY: grantpt/unlockpt take the descriptor only; results checked.
    cvt(unsafe { libc::grantpt(m) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::unlockpt(m) })?;
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is a writable buffer of the length given.
    let rc = unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into `name`.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_owned();
    set_window_size(m, rows, cols)?;
    set_nonblocking_fresh(m, libc::O_RDWR)?;
    Ok((master, path))
}

/// Set a terminal's window size (the kernel tells its foreground group with SIGWINCH).
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

/// Write without ever letting SIGPIPE reach the process.
///
/// We are a library inside someone else's interpreter, so we may not change
/// the process-wide SIGPIPE disposition. Instead SIGPIPE is blocked in this
/// thread for the duration of the write, and a SIGPIPE that the write itself
/// raised is consumed before the mask is restored (one that was already
/// pending belongs to someone else and is left alone). EPIPE is still
/// returned to the caller. Returns `Ok(None)` when the pipe is full.
pub fn write_nosigpipe(fd: RawFd, buf: &[u8]) -> io::Result<Option<usize>> {
    // SAFETY: signal sets are local and initialised before use; `buf` is a live slice of `buf.len()` bytes; the mask is restored before returning.
    unsafe {
        let mut pipe_set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_set);
        libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_set, &mut old);
        // While SIGPIPE was unblocked in this thread none can be pending for
        // it (it would have been delivered), so only a thread that already
        // blocked it needs to ask (saves a syscall on every write).
        let was_pending = libc::sigismember(&old, libc::SIGPIPE) == 1 && {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGPIPE) == 1
        };

        let result = nonblocking_write(|| libc::write(fd, buf.as_ptr().cast(), buf.len()));

        if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) && !was_pending {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            while libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero) == -1
                && *libc::__errno_location() == libc::EINTR
            {}
        }
        if libc::sigismember(&old, libc::SIGPIPE) == 0 {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        result
    }
}

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
    loop {
        // SAFETY: siginfo_t is plain data, valid when zeroed.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live siginfo_t for waitid to fill.
        let r = unsafe {
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        if r == -1 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        // SAFETY: waitid filled `info` for a child event (or left it zeroed).
        let (found, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if found == 0 {
            return Ok(None);
        }
        // Rebuild a waitpid-style status for the shell convention.
        return Ok(Some(match code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            _ => status & 0x7f,
        }));
    }
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


/// The host's signals held back while a blocking call loops in Rust, and
/// let in only while it waits in the kernel (`epoll_pwait` with `waiting`).
///
/// A blocking call that takes several turns of the event loop without going
/// back to Lua must still return as soon as a signal's handler runs (Ctrl-C:
/// the interpreter's handler sets a hook that only Lua code triggers). A
/// signal that arrived between two waits, or while a wait returned events,
/// would leave no trace for the next wait to see; held back, it stays
/// pending (`arrived`) until the loop returns or the next wait lets it in
/// (that wait then returns EINTR).
/// The faults a thread raises itself (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
/// SIGTRAP, SIGSYS, SIGABRT) are never held: blocking them would kill the
/// process instead of running the host's handler.
pub struct SignalsHeld {
    /// The mask to restore, which is also the one to wait with.
    pub waiting: libc::sigset_t,
}

impl SignalsHeld {
    pub fn new() -> SignalsHeld {
        // SAFETY: both sets are local, initialised by sigfillset/sigemptyset
        // before use; pthread_sigmask only reads `held` and writes `old`.
        unsafe {
            let mut held: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut held);
            for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGSYS, libc::SIGABRT] {
                libc::sigdelset(&mut held, sig);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut old);
            libc::pthread_sigmask(libc::SIG_BLOCK, &held, &mut old);
            SignalsHeld { waiting: old }
        }
    }

    /// Whether a signal held back here is pending that, let in, would do
    /// something: run a handler, or end or stop the process. (A blocked
    /// signal whose default is to be ignored, SIGCHLD above all, is still
    /// queued; it is not news.) A wait that finds events ready returns them
    /// even then (the signal stays pending), so a loop asks this after
    /// every turn.
    pub fn arrived(&self) -> bool {
        // SAFETY: `pending` is a local set that sigpending fills; a sigset_t
        // is at least 64 bits on every Linux target.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            if libc::sigpending(&mut pending) != 0 {
                return false;
            }
            // Linux signals are the bits of the first 64-bit word (glibc's
            // sigset_t holds 1024 bits, the kernel's 64); both sets are read
            // alike, so the byte order does not matter. Nearly always no bit
            // is left, and no signal's action needs looking up.
            let first_word = |set: &libc::sigset_t| (set as *const libc::sigset_t).cast::<u64>().read_unaligned();
            if first_word(&pending) & !first_word(&self.waiting) == 0 {
                return false;
            }
            (1..=64).any(|sig| {
                libc::sigismember(&pending, sig) == 1 && libc::sigismember(&self.waiting, sig) != 1 && acts_on(sig)
            })
        }
    }
}

/// Whether signal `sig`, delivered now, would do anything.
fn acts_on(sig: libc::c_int) -> bool {
    // SAFETY: sigaction only writes the current action into `now`.
    let handler = unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut now) != 0 {
            return false;
        }
        now.sa_sigaction
    };
    match handler {
        libc::SIG_IGN => false,
        libc::SIG_DFL => !matches!(sig, libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT),
        _ => true,
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // Held signals are delivered here, before the call returns to Lua.
        // SAFETY: `waiting` is the mask pthread_sigmask filled in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.waiting, std::ptr::null_mut()) };
    }
}

/// `kill(2)`: only for a pid (or group id) that is known to be ours.
pub fn kill(target: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no pointer arguments.
    cvt(unsafe { libc::kill(target, sig) }).map(|_| ())
}

/// A new eventfd, close-on-exec and nonblocking, at zero.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no pointer arguments; the result is checked.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add one to an eventfd (wakes whoever polls it).
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Reset a nonblocking eventfd to zero.
pub fn eventfd_clear(fd: RawFd) {
    let mut buf = 0u64;
    // SAFETY: reads at most 8 bytes into a live u64.
    unsafe { libc::read(fd, (&mut buf as *mut u64).cast(), 8) };
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty has no pointer arguments.
    unsafe { libc::isatty(fd) == 1 }
}

/// The signal numbers there are (Linux: 1-31, and the real-time 32-64).
pub const SIGNAL_NUMBERS: std::ops::RangeInclusive<libc::c_int> = 1..=64;

/// Signal names without "SIG" and their numbers here. One table: the
/// remote side gets names (`kill -s`, numbers differ between kernels:
/// SIGCONT is 18 on Linux, 19 on BSD), and Lua code may use names.
pub const SIGNALS: &[(libc::c_int, &str)] = &[
    (libc::SIGHUP, "HUP"), (libc::SIGINT, "INT"), (libc::SIGQUIT, "QUIT"), (libc::SIGILL, "ILL"),
    (libc::SIGTRAP, "TRAP"), (libc::SIGABRT, "ABRT"), (libc::SIGBUS, "BUS"), (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"), (libc::SIGUSR1, "USR1"), (libc::SIGSEGV, "SEGV"), (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"), (libc::SIGALRM, "ALRM"), (libc::SIGTERM, "TERM"), (libc::SIGCHLD, "CHLD"),
    (libc::SIGCONT, "CONT"), (libc::SIGSTOP, "STOP"), (libc::SIGTSTP, "TSTP"), (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"), (libc::SIGURG, "URG"), (libc::SIGXCPU, "XCPU"), (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGVTALRM, "VTALRM"), (libc::SIGPROF, "PROF"), (libc::SIGWINCH, "WINCH"), (libc::SIGIO, "IO"),
    (libc::SIGSYS, "SYS"),
];

/// The name of signal `sig` (without "SIG"), if it has one.
pub fn signal_name(sig: libc::c_int) -> Option<&'static str> {
    SIGNALS.iter().find(|(n, _)| *n == sig).map(|(_, s)| *s)
}

/// Monotonic clock in seconds.
pub fn monotonic_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The system's text for an errno value, e.g. "No such file or directory".
pub fn strerror(errno: i32) -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: `buf` is a live buffer of its length; strerror_r writes a NUL-terminated message into it.
    unsafe {
        if libc::strerror_r(errno, buf.as_mut_ptr(), buf.len()) != 0 {
            return format!("error {errno}");
        }
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

/// The system's text for an `io::Error`, without Rust's "(os error N)" suffix.
pub fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(errno) => strerror(errno),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_signal_is_seen_as_arrived_and_delivered_when_released() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static DELIVERED: AtomicBool = AtomicBool::new(false);
        extern "C" fn note(_: libc::c_int) {
            DELIVERED.store(true, Ordering::SeqCst);
        }
        // SAFETY: a handler for SIGURG, which no other test uses; the signal
        // is sent to this thread only.
        unsafe { libc::signal(libc::SIGURG, note as *const () as libc::sighandler_t) };
        let held = SignalsHeld::new();
        assert!(!held.arrived());
        // SAFETY: pthread_self names this live thread.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGURG) };
        assert!(held.arrived(), "pending while held");
        assert!(!DELIVERED.load(Ordering::SeqCst), "not delivered while held");
        drop(held);
        assert!(DELIVERED.load(Ordering::SeqCst), "delivered when released");
        // A signal that would be ignored (SIGWINCH's default) is queued
        // while held, but it is no news.
        let held = SignalsHeld::new();
        // SAFETY: as above.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGWINCH) };
        assert!(!held.arrived());
        drop(held);
        // A signal the thread blocked itself stays its own business.
        // SAFETY: local sets; the mask is restored below.
        unsafe {
            let mut urg: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut urg);
            libc::sigaddset(&mut urg, libc::SIGURG);
            libc::pthread_sigmask(libc::SIG_BLOCK, &urg, std::ptr::null_mut());
            let held = SignalsHeld::new();
            libc::pthread_kill(libc::pthread_self(), libc::SIGURG);
            assert!(!held.arrived());
            drop(held);
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            assert_eq!(libc::sigismember(&pending, libc::SIGURG), 1, "still blocked, still pending");
            DELIVERED.store(false, Ordering::SeqCst);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &urg, std::ptr::null_mut());
            assert!(DELIVERED.load(Ordering::SeqCst));
        }
    }

    #[test]
    fn pipe_ends_are_cloexec_and_above_stdio() {
        let (r, w) = pipe().unwrap();
        for fd in [r.as_raw_fd(), w.as_raw_fd()] {
            assert!(fd > 2);
            // SAFETY: fcntl has no pointer arguments.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert_ne!(flags & libc::FD_CLOEXEC, 0);
        }
    }

    #[test]
    fn send_to_closed_socket_returns_epipe_without_killing_us() {
        let (a, b) = socketpair().unwrap();
        assert!(a.as_raw_fd() > 2 && b.as_raw_fd() > 2);
        assert_eq!(send_nosignal(a.as_raw_fd(), b"hi").unwrap(), Some(2));
        drop(b);
        let err = send_nosignal(a.as_raw_fd(), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        assert_no_sigpipe_pending();
    }

    /// A SIGPIPE raised by our writes was consumed, not left pending.
    fn assert_no_sigpipe_pending() {
        // SAFETY: sigpending and sigismember get a pointer to a local,
        // zero-initialised sigset_t (plain data).
        let pending = unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGPIPE)
        };
        assert_eq!(pending, 0);
    }

    #[test]
    fn write_to_closed_pipe_returns_epipe_without_killing_us() {
        let (r, w) = pipe().unwrap();
        drop(r);
        let err = write_nosigpipe(w.as_raw_fd(), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        assert_no_sigpipe_pending();
    }

    #[test]
    fn nonblocking_read_reports_would_block_then_data_then_eof() {
        let (r, w) = pipe().unwrap();
        set_nonblocking(r.as_raw_fd()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(read_nonblocking(r.as_raw_fd(), &mut buf).unwrap(), ReadOutcome::WouldBlock);
        assert_eq!(write_nosigpipe(w.as_raw_fd(), b"hi").unwrap(), Some(2));
        assert_eq!(read_nonblocking(r.as_raw_fd(), &mut buf).unwrap(), ReadOutcome::Data(2));
        drop(w);
        assert_eq!(read_nonblocking(r.as_raw_fd(), &mut buf).unwrap(), ReadOutcome::Eof);
    }

    #[test]
    fn strerror_gives_the_system_text() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }
}
