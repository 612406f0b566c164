//! Descriptors: pipes and socket pairs for children, their flags, and
//! reads and writes that never block and never raise SIGPIPE.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

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

/// A close-on-exec duplicate of descriptor number `fd`, numbered 3 or
/// above. A number that is not open (a host may close its stdout) gives
/// EBADF, not undefined behaviour: no `BorrowedFd` is made for it.
pub fn dup_above_stdio(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl has no pointer arguments; the result is checked.
    let dup = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
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
/// writer blocks (and both sides switch) four times less often, which moves
/// bulk data several times faster (bench/README.md has the figures).
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
/// itself.
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

/// One read of `fd` into `buf`, retried on EINTR.
pub fn read_nonblocking(fd: RawFd, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    // SAFETY: a live, writable slice is valid for writes of its length.
    unsafe { read_nonblocking_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// `read_nonblocking` into memory that need not be initialised (a vector's
/// spare capacity), so no `&mut [u8]` is ever made over it.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes.
pub unsafe fn read_nonblocking_raw(fd: RawFd, buf: *mut u8, len: usize) -> io::Result<ReadOutcome> {
    loop {
        // SAFETY: the caller promises `buf` is valid for writes of `len` bytes.
        let n = unsafe { libc::read(fd, buf.cast(), len) };
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

/// pwritev2's flag that makes a write to a pipe whose reader is gone fail
/// with EPIPE without raising SIGPIPE (Linux 6.15; older kernels refuse
/// the flag with EOPNOTSUPP, and write nothing).
const RWF_NOSIGNAL: libc::c_int = 0x100;

/// Write without raising SIGPIPE in one system call, where the kernel has
/// RWF_NOSIGNAL: `Ok(None)` when the pipe is full, EOPNOTSUPP (nothing
/// written) where the kernel lacks the flag, when the caller falls back to
/// `write_nosigpipe`.
pub fn write_nosignal_flag(fd: RawFd, buf: &[u8]) -> io::Result<Option<usize>> {
    let iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `iov` describes the live slice `buf`, which pwritev2 only
    // reads; offset -1 writes at the descriptor's own position (a pipe has
    // none).
    nonblocking_write(|| unsafe { libc::pwritev2(fd, &iov, 1, -1, RWF_NOSIGNAL) })
}

/// `write_nosigpipe` for a loop that holds the host's signals back
/// (`SignalsHeld`, which blocks SIGPIPE with the rest): no mask to change
/// around the write, so a write is one system call. A SIGPIPE that the
/// write raised (EPIPE) is consumed before the loop lets signals in again.
/// Where the host had SIGPIPE blocked already, one may have been pending
/// before: then the plain `write_nosigpipe` asks, as always.
pub fn write_nosigpipe_held(fd: RawFd, buf: &[u8], held: &super::SignalsHeld) -> io::Result<Option<usize>> {
    // SAFETY: `held.waiting` is a sigset_t that pthread_sigmask filled.
    if unsafe { libc::sigismember(&held.waiting, libc::SIGPIPE) } == 1 {
        return write_nosigpipe(fd, buf);
    }
    // SAFETY: `buf` is a live slice of `buf.len()` bytes; the signal set is
    // local and initialised before use. SIGPIPE is blocked in this thread
    // (held), so the write cannot deliver it.
    unsafe {
        let result = nonblocking_write(|| libc::write(fd, buf.as_ptr().cast(), buf.len()));
        if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
            let mut pipe_set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pipe_set);
            libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            while libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero) == -1
                && *libc::__errno_location() == libc::EINTR
            {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;


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
}
