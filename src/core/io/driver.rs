//! The per-state event loop: one epoll set over every parent-side pipe end
//! and child pidfd of one Lua state.
//!
//! Some work is done here, without Lua, because nobody is waiting for it:
//! - queued stdin data is written as the child makes room;
//! - output streams in read-ahead or discard mode (see `stream.rs`) are
//!   taken in as it arrives, so a child never blocks on output nobody reads;
//! - a child whose exit is seen is reaped at once (its status waits in the
//!   child table's outcome for `wait()` and `status()`), so no child of a
//!   long-lived handle stays a zombie until someone asks.
//!
//! Everything else is reported to the Lua scheduler as a token that became
//! ready: a readable stream, a stdin queue that has room again, a child that
//! exited.
//!
//! Work that no descriptor announces (a task the scheduler made ready, a
//! timer it added) is announced through the notice, an eventfd in the same
//! epoll set: the scheduler signals it when a poll that already decided how
//! long to wait, or a host loop watching `fd()`, must hear of it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::core::io::poller::{Interest, Poller, Token, Unwatch};
use crate::core::io::stdin::StdinPipe;
use crate::core::io::stream::{SharedOutputs, Wakeups};
use crate::core::os::children;
use crate::core::os::sys::{self, SignalsHeld};

/// Stdin data queued beyond this makes `write_stdin` wait for room.
pub const STDIN_HIGH_WATER: usize = 16 << 20;

/// How often children without a pidfd are checked for exit (the child
/// table's constant, so that both loops poll alike).
const FALLBACK_POLL_MS: i32 = crate::core::os::children::FALLBACK_POLL.as_millis() as i32;

/// The notice's token (sources get tokens from 1 on).
const NOTICE: Token = 0;

/// An eventfd in the driver's epoll set that makes the set readable, and
/// ends a wait in it, for work only the scheduler knows of. It is written
/// once until a poll takes it, so a burst of work costs one write and one
/// read. Shared (not inside the driver's RefCell) so that the scheduler
/// can signal it whatever is borrowed when its Lua code runs.
pub struct Notice {
    fd: OwnedFd,
    /// Written and not yet taken by a poll.
    pending: Cell<bool>,
}

impl Notice {
    /// Make the epoll set readable until the next poll takes the notice.
    pub fn signal(&self) {
        if !self.pending.replace(true) {
            sys::eventfd_signal(self.fd.as_raw_fd());
        }
    }

    /// A poll took the notice: reset it, so that the next signal writes again.
    fn take(&self) {
        if self.pending.replace(false) {
            sys::eventfd_clear(self.fd.as_raw_fd());
        }
    }
}

enum Source {
    /// Output stream `.1` of a process; the fds belong to the outputs.
    Output(SharedOutputs, usize),
    /// A child's stdin queue, and whether its descriptor is in the epoll
    /// set yet (see `watch_writer`).
    Write(Rc<RefCell<StdinPipe>>, bool),
    /// The pidfd of child `.0`; the fd belongs to the process.
    Exit(libc::pid_t),
}

pub struct Driver {
    poller: Poller,
    next: Token,
    sources: HashMap<Token, Source>,
    /// Exit tokens of children the kernel gave no pidfd for, with their
    /// pids: each is reaped if it exited (a cheap `waitpid(WNOHANG)`) and
    /// reported on every poll, after at most FALLBACK_POLL_MS.
    polled_exits: HashMap<Token, libc::pid_t>,
    /// Output sources whose last fill stopped before the pipe was empty.
    again: Vec<Token>,
    /// Tokens that fills outside a poll brought news for (see stream.rs).
    wakeups: Wakeups,
    notice: Rc<Notice>,
}

pub type SharedDriver = Rc<RefCell<Driver>>;

impl Driver {
    pub fn new() -> io::Result<Driver> {
        let poller = Poller::new()?;
        let notice = Rc::new(Notice { fd: sys::eventfd()?, pending: Cell::new(false) });
        poller.add(notice.fd.as_raw_fd(), Interest::Read, NOTICE)?;
        Ok(Driver {
            poller,
            next: 1,
            sources: HashMap::new(),
            polled_exits: HashMap::new(),
            again: Vec::new(),
            wakeups: Rc::new(RefCell::new(Vec::new())),
            notice,
        })
    }

    /// The notice, for whoever must signal it without borrowing the driver.
    pub fn notice(&self) -> Rc<Notice> {
        self.notice.clone()
    }

    pub fn shared() -> io::Result<SharedDriver> {
        Ok(Rc::new(RefCell::new(Driver::new()?)))
    }

    fn token(&mut self) -> Token {
        let t = self.next;
        self.next += 1;
        t
    }

    /// Watch output stream `which` of `outputs`.
    pub fn add_output(&mut self, outputs: SharedOutputs, which: usize) -> io::Result<Token> {
        let t = self.token();
        if let Some(fd) = outputs.raw_fd(which) {
            self.poller.add(fd, Interest::Read, t)?;
        }
        outputs.set_waker(which, t, self.wakeups.clone());
        self.sources.insert(t, Source::Output(outputs, which));
        Ok(t)
    }

    /// A child's stdin queue. Its descriptor joins the epoll set only once
    /// a write finds the pipe full (`watch_writer`): a fresh pipe is
    /// writable, and in the set from the start it would end the process's
    /// first wait with an edge nobody needs (a turn, and a return to Lua,
    /// for every child whose input fits in its pipe).
    pub fn add_writer(&mut self, pipe: Rc<RefCell<StdinPipe>>) -> io::Result<Token> {
        let t = self.token();
        self.sources.insert(t, Source::Write(pipe, false));
        Ok(t)
    }

    /// Put the descriptor of stdin queue `token` in the epoll set, if it is
    /// not there yet: a write found the pipe full, and the queue waits for
    /// room. (Added now, an edge that came before is reported at once.)
    pub fn watch_writer(&mut self, token: Token) -> io::Result<()> {
        if let Some(Source::Write(pipe, watched)) = self.sources.get_mut(&token) {
            if !*watched {
                if let Some(fd) = pipe.borrow().raw_fd() {
                    self.poller.add(fd, Interest::Write, token)?;
                }
                *watched = true;
            }
        }
        Ok(())
    }

    /// Watch the exit of child `pid`: through its pidfd, or by polling
    /// without one.
    pub fn add_exit(&mut self, pid: libc::pid_t, pidfd: Option<RawFd>) -> io::Result<Token> {
        let t = self.token();
        match pidfd {
            Some(fd) => {
                self.poller.add(fd, Interest::Read, t)?;
                self.sources.insert(t, Source::Exit(pid));
            }
            None => {
                self.polled_exits.insert(t, pid);
            }
        }
        Ok(t)
    }

    /// Stop watching `token`; its fd is closed right after by its owner.
    ///
    /// No EPOLL_CTL_DEL is issued: the kernel drops an epoll entry once the
    /// last descriptor of its open file is closed, which for most sources
    /// is the owner's close right after this. Where another descriptor keeps
    /// the file open (a pseudo-terminal's master, which stdin, stdout and
    /// the window size share; a stream's pipe handed to another child as
    /// its stdin; a copy in a host's fork), the entry stays until then, and
    /// its events carry a token that is never reused, so they are ignored.
    /// That saves a system call per source per process.
    pub fn remove(&mut self, token: Token) {
        self.polled_exits.remove(&token);
        self.sources.remove(&token);
    }

    /// A descriptor that becomes readable when `poll` has news (see
    /// Poller::fd), the notice included.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.poller.fd()
    }

    /// Within how many milliseconds `poll` must run again even if `fd` stays
    /// quiet: 0 when work is queued that no descriptor will announce (a fill
    /// that stopped early, a fill outside a poll), the fallback interval
    /// while children without pidfds are watched, else `None`.
    pub fn due_within_ms(&self) -> Option<i32> {
        if !self.again.is_empty() || !self.wakeups.borrow().is_empty() {
            Some(0)
        } else if !self.polled_exits.is_empty() {
            Some(FALLBACK_POLL_MS)
        } else {
            None
        }
    }

    /// One turn of the loop: reap the orphans that are due (without a reaper
    /// thread this is where they are reaped), then `poll`. `held`: the
    /// host's signals held back by a loop in Rust (sys::SignalsHeld), let in
    /// only while waiting, with the mask it restores.
    pub fn turn(&mut self, timeout_ms: i32, ready: &mut Vec<Token>, held: Option<&SignalsHeld>) -> io::Result<()> {
        children::sweep_orphans();
        self.poll_with(timeout_ms, ready, held.map(|h| &h.waiting))
    }

    /// Wait up to `timeout_ms` (-1 forever) and push every token the Lua side
    /// must hear about into `ready`. Returns early with nothing on EINTR, and
    /// when the notice was signalled (which is taken, and not reported).
    #[cfg(test)]
    pub fn poll(&mut self, timeout_ms: i32, ready: &mut Vec<Token>) -> io::Result<()> {
        self.poll_with(timeout_ms, ready, None)
    }

    fn poll_with(&mut self, mut timeout_ms: i32, ready: &mut Vec<Token>, mask: Option<&libc::sigset_t>) -> io::Result<()> {
        if !self.polled_exits.is_empty() && !(0..=FALLBACK_POLL_MS).contains(&timeout_ms) {
            timeout_ms = FALLBACK_POLL_MS;
        }
        let mut fired = std::mem::take(&mut self.again);
        fired.append(&mut self.wakeups.borrow_mut());
        if !fired.is_empty() {
            timeout_ms = 0;
        }
        self.poller.wait(timeout_ms, mask, |t| fired.push(t))?;
        for t in fired {
            if t == NOTICE {
                self.notice.take();
                continue;
            }
            match self.sources.get(&t) {
                Some(Source::Exit(pid)) => {
                    // (An error is the handle's to report, when it asks.)
                    let _ = children::try_reap(*pid);
                    ready.push(t);
                }
                Some(Source::Output(outs, which)) => {
                    let f = outs.fill(*which);
                    if f.finished {
                        // A discarded stream at its end: nothing left to do.
                        outs.close(*which);
                        self.sources.remove(&t);
                        continue;
                    }
                    if f.more {
                        self.again.push(t);
                    }
                    ready.push(t);
                }
                Some(Source::Write(p, _)) => {
                    let mut p = p.borrow_mut();
                    // A caller that waits for room (write_stdin_alone)
                    // hears of every edge that made progress.
                    let wanted = p.wants_room();
                    if p.flush() && (wanted || p.queued() < STDIN_HIGH_WATER) {
                        ready.push(t);
                    }
                }
                None => {}
            }
        }
        for (t, pid) in &self.polled_exits {
            let _ = children::try_reap(*pid);
            ready.push(*t);
        }
        Ok(())
    }
}

impl Unwatch for Driver {
    fn remove(&mut self, token: Token) {
        Driver::remove(self, token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::io::stream::Outputs;
    use crate::core::os::sys;

    #[test]
    fn reports_readable_outputs_and_takes_in_read_ahead_ones() {
        let mut d = Driver::new().unwrap();
        let (r, w) = sys::pipe().unwrap();
        sys::set_nonblocking(r.as_raw_fd()).unwrap();
        let outs = Outputs::new([Some(r), None], 1 << 20);
        let t = d.add_output(outs.clone(), 0).unwrap();
        let mut ready = Vec::new();
        d.poll(0, &mut ready).unwrap();
        assert!(ready.is_empty(), "nothing written yet");
        sys::write_nosigpipe(w.as_raw_fd(), b"hello").unwrap();
        d.poll(1000, &mut ready).unwrap();
        assert_eq!(ready, vec![t]);
        assert_eq!(outs.buffered(), 0, "a direct stream is left to its reader");
        outs.read_ahead(0);
        assert_eq!(outs.buffered(), 5, "turning read-ahead on takes in what is there");
        sys::write_nosigpipe(w.as_raw_fd(), b" world").unwrap();
        ready.clear();
        d.poll(1000, &mut ready).unwrap();
        // Reported (turning read-ahead on queued it too: a duplicate is harmless).
        ready.dedup();
        assert_eq!(ready, vec![t]);
        assert_eq!(outs.buffered(), 11, "the loop takes in what arrives");
    }

    #[test]
    fn a_removed_token_is_never_reported() {
        let mut d = Driver::new().unwrap();
        let (r, w) = sys::pipe().unwrap();
        sys::set_nonblocking(r.as_raw_fd()).unwrap();
        let outs = Outputs::new([Some(r), None], 1 << 20);
        let t = d.add_output(outs.clone(), 0).unwrap();
        d.remove(t);
        sys::write_nosigpipe(w.as_raw_fd(), b"x").unwrap();
        let mut ready = Vec::new();
        d.poll(50, &mut ready).unwrap();
        assert!(ready.is_empty());
    }

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: `p` is one live pollfd.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn the_notice_makes_the_set_readable_and_ends_a_wait_once() {
        let mut d = Driver::new().unwrap();
        let mut ready = Vec::new();
        d.poll(0, &mut ready).unwrap();
        assert!(!readable(d.fd()), "nothing to report yet");
        let notice = d.notice();
        notice.signal();
        notice.signal(); // (written once until a poll takes it)
        assert!(readable(d.fd()), "a host loop watching fd() hears of it");
        let t0 = std::time::Instant::now();
        d.poll(5000, &mut ready).unwrap();
        assert!(t0.elapsed().as_millis() < 1000, "the wait ended at once");
        assert!(ready.is_empty(), "the notice is not a token of the Lua side");
        assert!(!readable(d.fd()), "the poll took it");
        let t0 = std::time::Instant::now();
        d.poll(50, &mut ready).unwrap();
        assert!(t0.elapsed().as_millis() >= 40, "taken: the next wait is a full one");
        notice.signal();
        assert!(readable(d.fd()), "signalled again after the poll took it");
    }

    #[test]
    fn children_without_pidfd_are_reported_at_least_every_poll_interval() {
        let mut d = Driver::new().unwrap();
        let t = d.add_exit(0, None).unwrap();
        let mut ready = Vec::new();
        let t0 = std::time::Instant::now();
        d.poll(-1, &mut ready).unwrap();
        assert_eq!(ready, vec![t]);
        assert!(t0.elapsed().as_millis() < 1000);
    }
}
