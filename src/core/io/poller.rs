//! A minimal edge-triggered epoll wrapper.
//!
//! Edge-triggered because every user of it follows the same protocol: try
//! the operation first, and wait only after it reported "would block". An
//! edge that nobody waits for is simply ignored by the caller.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::core::os::sys::cvt;

pub type Token = u64;

/// What a handle needs of the event loop when it goes away: to stop being
/// watched. Handles hold the loop as this trait, so that they do not depend
/// on the loop's type (the loop depends on theirs).
pub trait Unwatch {
    fn remove(&mut self, token: Token);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

pub struct Poller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 has no pointer arguments; the result is checked.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Poller {
            // SAFETY: `fd` was just created by epoll_create1 and is owned by nobody else.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
        })
    }

    /// The epoll descriptor itself: readable while any watched source has
    /// an event not yet taken (so another event loop can watch it).
    pub fn fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    pub fn add(&self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let bits = match interest {
            Interest::Read => libc::EPOLLIN | libc::EPOLLRDHUP,
            Interest::Write => libc::EPOLLOUT,
        };
        let mut ev = libc::epoll_event { events: (bits | libc::EPOLLET) as u32, u64: token };
        // SAFETY: `ev` is a live epoll_event; the fds are checked by the kernel.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Wait up to `timeout_ms` (-1: forever) and call `f` with each ready
    /// token. An interrupted wait (EINTR) returns with no events, so that a
    /// host's signal handling (Ctrl-C in the interpreter) gets to run.
    /// `mask`: the signal mask to wait with (see sys::SignalsHeld), else the
    /// thread's own.
    pub fn wait(&mut self, timeout_ms: i32, mask: Option<&libc::sigset_t>, mut f: impl FnMut(Token)) -> io::Result<usize> {
        let mask = mask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
        // SAFETY: `events` is a live buffer of `len` epoll_event structs;
        // `mask` is null or points to a live sigset_t.
        let n = unsafe {
            libc::epoll_pwait(self.epfd.as_raw_fd(), self.events.as_mut_ptr(), self.events.len() as i32, timeout_ms, mask)
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.raw_os_error() == Some(libc::EINTR) { Ok(0) } else { Err(err) };
        }
        for ev in &self.events[..n as usize] {
            f(ev.u64);
        }
        Ok(n as usize)
    }
}
