//! The per-state event loop: one epoll set over every parent-side pipe end
//! and child pidfd of one Lua state.
//!
//! Some work is done here, without Lua, because nobody is waiting for it:
//! - queued stdin data is written as the child makes room;
//! - output of a stream that was never obtained is drained and discarded
//!   once `wait()` runs, so a chatty child cannot block its own exit.
//!
//! Everything else is reported to the Lua scheduler as a token that became
//! ready: a readable stream, a stdin queue that has room again, a child that
//! exited.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::poller::{Interest, Poller, Token};
use super::stdin::StdinPipe;
use super::stream::SharedStream;
use super::sys::{self, ReadOutcome};

/// Stdin data queued beyond this makes `write_stdin` wait for room.
pub const STDIN_HIGH_WATER: usize = 16 << 20;

/// How often children without a pidfd are checked for exit.
const FALLBACK_POLL_MS: i32 = 10;

enum Source {
    /// A stream the Lua side reads; the fd belongs to the stream.
    Read,
    /// An unobtained stream being discarded; the fd belongs to the driver.
    Drain(OwnedFd),
    /// A handed-out stream read ahead into its buffer while `wait()` runs.
    ReadAhead(SharedStream),
    /// A child's stdin queue.
    Write(Rc<RefCell<StdinPipe>>),
    /// A child's pidfd; the fd belongs to the process.
    Exit,
}

pub struct Driver {
    poller: Poller,
    next: Token,
    sources: HashMap<Token, Source>,
    /// Exit tokens of children the kernel gave no pidfd for: reported on
    /// every poll, after at most FALLBACK_POLL_MS, and the Lua side calls
    /// `try_wait`, a cheap `waitpid(WNOHANG)`.
    polled_exits: HashSet<Token>,
    scratch: Vec<u8>,
}

pub type SharedDriver = Rc<RefCell<Driver>>;

impl Driver {
    pub fn new() -> io::Result<Driver> {
        Ok(Driver {
            poller: Poller::new()?,
            next: 1,
            sources: HashMap::new(),
            polled_exits: HashSet::new(),
            scratch: Vec::new(),
        })
    }

    pub fn shared() -> io::Result<SharedDriver> {
        Ok(Rc::new(RefCell::new(Driver::new()?)))
    }

    fn token(&mut self) -> Token {
        let t = self.next;
        self.next += 1;
        t
    }

    pub fn add_reader(&mut self, fd: RawFd) -> io::Result<Token> {
        let t = self.token();
        self.poller.add(fd, Interest::Read, t)?;
        self.sources.insert(t, Source::Read);
        Ok(t)
    }

    pub fn add_writer(&mut self, pipe: Rc<RefCell<StdinPipe>>) -> io::Result<Token> {
        let t = self.token();
        if let Some(fd) = pipe.borrow().raw_fd() {
            self.poller.add(fd, Interest::Write, t)?;
        }
        self.sources.insert(t, Source::Write(pipe));
        Ok(t)
    }

    /// Watch a child's exit: through its pidfd, or by polling without one.
    pub fn add_exit(&mut self, pidfd: Option<RawFd>) -> io::Result<Token> {
        let t = self.token();
        match pidfd {
            Some(fd) => {
                self.poller.add(fd, Interest::Read, t)?;
                self.sources.insert(t, Source::Exit);
            }
            None => {
                self.polled_exits.insert(t);
            }
        }
        Ok(t)
    }

    /// Stop watching `token`; its fd is closed right after by its owner.
    ///
    /// No EPOLL_CTL_DEL is issued: closing the (never duplicated) parent end
    /// removes it from the epoll set, and should a host's fork keep a copy
    /// alive, its events carry a token that is never reused and so are
    /// ignored. That saves a system call per source per process.
    pub fn remove(&mut self, token: Token) {
        self.polled_exits.remove(&token);
        self.sources.remove(&token);
    }

    /// Turn the reader `token` into a drain that owns `fd` and discards
    /// everything until end-of-file. Whatever is already buffered is
    /// discarded right away (its edge may have been reported long ago).
    pub fn drain(&mut self, token: Token, fd: OwnedFd) {
        self.sources.insert(token, Source::Drain(fd));
        self.drain_now(token);
    }

    /// Turn the reader `token` of a handed-out stream into a read-ahead: the
    /// loop reads whatever arrives into the stream's buffer (and still
    /// reports the token, so that a waiting reader wakes up).
    pub fn read_ahead(&mut self, token: Token, stream: SharedStream) {
        if let Some(Source::Read) = self.sources.get(&token) {
            stream.borrow_mut().fill();
            self.sources.insert(token, Source::ReadAhead(stream));
        }
    }

    fn drain_now(&mut self, token: Token) {
        let fd = match self.sources.get(&token) {
            Some(Source::Drain(fd)) => fd.as_raw_fd(),
            _ => return,
        };
        if self.scratch.len() < 65536 {
            self.scratch.resize(65536, 0);
        }
        loop {
            match sys::read_nonblocking(fd, &mut self.scratch) {
                Ok(ReadOutcome::Data(_)) => continue,
                Ok(ReadOutcome::WouldBlock) => return,
                Ok(ReadOutcome::Eof) | Err(_) => {
                    self.remove(token);
                    return;
                }
            }
        }
    }

    /// Wait up to `timeout_ms` (-1 forever) and push every token the Lua side
    /// must hear about into `ready`. Returns early with nothing on EINTR.
    pub fn poll(&mut self, mut timeout_ms: i32, ready: &mut Vec<Token>) -> io::Result<()> {
        if !self.polled_exits.is_empty() && (timeout_ms < 0 || timeout_ms > FALLBACK_POLL_MS) {
            timeout_ms = FALLBACK_POLL_MS;
        }
        let mut fired = Vec::new();
        self.poller.wait(timeout_ms, |t| fired.push(t))?;
        for t in fired {
            match self.sources.get(&t) {
                Some(Source::Read) | Some(Source::Exit) => ready.push(t),
                Some(Source::Drain(_)) => self.drain_now(t),
                Some(Source::ReadAhead(stream)) => {
                    stream.borrow_mut().fill();
                    ready.push(t);
                }
                Some(Source::Write(p)) => {
                    let mut p = p.borrow_mut();
                    if p.flush() && p.queued() < STDIN_HIGH_WATER {
                        ready.push(t);
                    }
                }
                None => {}
            }
        }
        ready.extend(self.polled_exits.iter().copied());
        Ok(())
    }
}
