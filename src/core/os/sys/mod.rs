//! Thin, safe wrappers over the few system calls the core needs.
//!
//! Everything here returns `io::Result` and keeps `errno` handling in one
//! place, so the rest of the core never touches raw return codes. The
//! parts: descriptors and their reads and writes (`fds`), pseudo-terminals
//! (`pty`), pidfds and what /proc and waitid say of children (`child`), and
//! signals (`signals`); here, what they share.

mod child;
mod fds;
mod pty;
mod signals;

pub use child::*;
pub use fds::*;
pub use pty::*;
pub use signals::*;

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// What a system call returns on failure (with `errno` set): -1.
pub trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}

impl MinusOne for i32 {
    const MINUS_ONE: i32 = -1;
}

impl MinusOne for isize {
    const MINUS_ONE: isize = -1;
}

/// Turn a `-1` return into the current `errno`.
pub fn cvt<T: MinusOne>(ret: T) -> io::Result<T> {
    if ret == T::MINUS_ONE {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `cvt` for a call that can be interrupted: retried on EINTR (a signal's
/// handler ran meanwhile; the call itself did nothing), as std's `cvt_r`.
pub fn cvt_r<T: MinusOne>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(call()) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
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
    fn strerror_gives_the_system_text() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }
}
