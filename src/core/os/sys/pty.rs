//! Pseudo-terminals for `pty = true`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{above_stdio, cvt, set_nonblocking_fresh};

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
