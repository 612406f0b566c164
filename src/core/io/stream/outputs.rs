//! The output pipes of one process: read-ahead and its shared limit,
//! closing, handing a pipe over to another child.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use crate::core::error::{Error, What};
use super::buffer::{read_append, with_scratch};
use super::state::{Mode, StreamState};
use crate::core::io::poller::Token;
use crate::core::os::sys::{self, ReadOutcome};

/// Reads one fill may do before the event loop turns again, so that an
/// endless writer cannot keep the loop in one fill forever.
const FILL_READS: usize = 64;

/// What `fill` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    /// Anything changed that a reader must see (data, end, error).
    pub news: bool,
    /// The pipe may hold more: fill again at the next turn of the loop.
    pub more: bool,
    /// The stream reached its end while discarding: it can be forgotten.
    pub finished: bool,
}

/// The output pipes of one process and the read-ahead budget they share.
pub struct Outputs {
    pub(super) streams: [RefCell<Option<StreamState>>; 2],
    pub(super) limit: usize,
    pub(super) used: Cell<usize>,
    /// Per stream: its token and the event loop's queue of tokens to
    /// report. A fill made outside the loop's poll (read-ahead turned on)
    /// consumes the pipe's edge: whoever waits on the stream must still
    /// hear of what it took in.
    pub(super) wakers: RefCell<[Option<(Token, Wakeups)>; 2]>,
    /// See `mark_terminal`.
    pub(super) terminal: Cell<bool>,
}

/// Tokens to report at the event loop's next poll.
pub type Wakeups = Rc<RefCell<Vec<Token>>>;

pub type SharedOutputs = Rc<Outputs>;

impl Outputs {
    pub fn new(fds: [Option<OwnedFd>; 2], limit: usize) -> SharedOutputs {
        let [a, b] = fds.map(|fd| {
            RefCell::new(fd.map(|fd| StreamState {
                fd: Some(fd),
                open: true,
                eof: false,
                error: None,
                buffer: Vec::new(),
                pos: 0,
                grown: false,
                mode: Mode::Direct,
                dropped: 0,
                acc: Vec::new(),
                acc_pos: 0,
                read_from: false,
                scan: 0,
                whole: false,
                whole_cap: None,
                truncated: false,
            }))
        });
        Rc::new(Outputs {
            streams: [a, b],
            limit,
            used: Cell::new(0),
            wakers: RefCell::new([None, None]),
            terminal: Cell::new(false),
        })
    }

    /// Where to report stream `which` when a fill outside the loop brings news.
    pub fn set_waker(&self, which: usize, token: Token, wakeups: Wakeups) {
        self.wakers.borrow_mut()[which] = Some((token, wakeups));
    }

    pub(super) fn notify(&self, which: usize, f: Filled) {
        if f.news || f.more {
            if let Some((t, w)) = &self.wakers.borrow()[which] {
                w.borrow_mut().push(*t);
            }
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn has(&self, which: usize) -> bool {
        self.streams[which].borrow().is_some()
    }

    pub fn raw_fd(&self, which: usize) -> Option<i32> {
        self.streams[which].borrow().as_ref().and_then(|s| s.fd.as_ref().map(|f| f.as_raw_fd()))
    }

    /// Bytes held in read-ahead buffers, all streams together.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.used.get()
    }

    pub(super) fn consume(&self, st: &mut StreamState, n: usize) {
        st.pos += n;
        self.used.set(self.used.get() - n);
        if st.pos == st.buffer.len() {
            st.buffer = Vec::new();
            st.pos = 0;
        }
    }

    /// Let the event loop take in stream `which` from now on (it is not
    /// being read while the program waits on something else), and take in
    /// what its pipe holds already: its last edge may be long gone.
    pub fn read_ahead(&self, which: usize) -> Filled {
        let changed = match self.streams[which].borrow_mut().as_mut() {
            Some(st) if st.mode == Mode::Direct && !st.whole => {
                st.mode = Mode::Ahead;
                true
            }
            _ => false,
        };
        if changed {
            let f = self.fill(which);
            self.notify(which, f);
            f
        } else {
            Filled::default()
        }
    }

    /// Stream `which` can never be read again: discard what it holds and
    /// whatever still arrives, so that the child never blocks on it.
    pub fn discard(&self, which: usize) -> Filled {
        if let Some(st) = self.streams[which].borrow_mut().as_mut() {
            let held = st.buffered();
            self.consume(st, held);
            st.mode = Mode::Discard;
        }
        let f = self.fill(which);
        self.notify(which, f);
        f
    }

    /// Take in what the pipe of `which` holds, as its mode says.
    pub fn fill(&self, which: usize) -> Filled {
        let mut guard = self.streams[which].borrow_mut();
        let st = match guard.as_mut() {
            Some(st) if st.mode != Mode::Direct && !st.eof && st.error.is_none() => st,
            _ => return Filled::default(),
        };
        let fd = match &st.fd {
            Some(fd) => fd.as_raw_fd(),
            None => return Filled::default(),
        };
        let mut filled = Filled::default();
        for _ in 0..FILL_READS {
            let r = if st.mode == Mode::Discard {
                with_scratch(|buf| sys::read_nonblocking(fd, buf))
            } else {
                self.read_into_buffer(st, fd)
            };
            match r {
                Ok(ReadOutcome::Data(n)) => {
                    if st.mode == Mode::Ahead {
                        filled.news = true;
                        self.used.set(self.used.get() + n);
                        self.enforce_limit(st);
                    }
                }
                Ok(ReadOutcome::WouldBlock) => return filled,
                Ok(ReadOutcome::Eof) => {
                    st.ended();
                    filled.news = true;
                    filled.finished = st.mode == Mode::Discard;
                    return filled;
                }
                Err(e) => {
                    st.error = Some(Error::os("read failed", &e));
                    filled.news = true;
                    filled.finished = st.mode == Mode::Discard;
                    return filled;
                }
            }
        }
        filled.more = true;
        filled
    }

    /// One read appended to the stream's buffer (see `chunk_to_fill`).
    pub(super) fn read_into_buffer(&self, st: &mut StreamState, fd: i32) -> std::io::Result<ReadOutcome> {
        if st.pos > 0 && st.pos * 2 >= st.buffer.len() {
            st.buffer.drain(..st.pos);
            st.pos = 0;
        }
        read_append(&mut st.buffer, fd)
    }

    /// Past the limit, drop the oldest bytes of `st` (the stream that grew).
    pub(super) fn enforce_limit(&self, st: &mut StreamState) {
        let used = self.used.get();
        if used <= self.limit {
            return;
        }
        let take = (used - self.limit).min(st.buffered());
        st.dropped += take as u64;
        self.consume(st, take);
    }

    pub fn is_open(&self, which: usize) -> bool {
        matches!(self.streams[which].borrow().as_ref(), Some(st) if st.open)
    }

    /// Close stream `which` and free what it buffered. Idempotent.
    pub fn close(&self, which: usize) {
        if let Some(st) = self.streams[which].borrow_mut().as_mut() {
            let held = st.buffered();
            self.used.set(self.used.get() - held);
            st.fd = None;
            st.open = false;
            st.error = None;
            st.buffer = Vec::new();
            st.pos = 0;
            st.acc = Vec::new();
            st.acc_pos = 0;
            st.scan = 0;
        }
    }

    /// Give the read end of stream `which` away (another child's stdin, for
    /// a pipeline), in blocking mode as a child expects: only while nothing
    /// of it was taken in. Reads afterwards say where it went.
    pub fn hand_over(&self, which: usize) -> Result<OwnedFd, Error> {
        self.check_hand_over(which)?;
        let mut guard = self.streams[which].borrow_mut();
        let st = guard.as_mut().filter(|st| st.open).ok_or(Error::Closed(What::Stream))?;
        let fd = st.fd.take().ok_or(Error::Closed(What::Stream))?;
        sys::set_blocking(fd.as_raw_fd()).map_err(|e| Error::os("cannot hand the pipe over", &e))?;
        st.open = false;
        st.error = Some(Error::HandedOver);
        Ok(fd)
    }

    /// Whether `hand_over(which)` would give the pipe away: Ok, or why not.
    /// Nothing changes, so that a start that hands over several streams
    /// can check them all before it takes any.
    pub fn check_hand_over(&self, which: usize) -> Result<(), Error> {
        if self.terminal.get() {
            // Its descriptor shares one open terminal with the process's
            // stdin: made blocking for the new reader, it would make every
            // write_stdin block the whole program.
            return Err(Error::Unsupported("it reads a terminal (pty = true), which cannot be handed over".into()));
        }
        let guard = self.streams[which].borrow();
        let st = guard.as_ref().filter(|st| st.open).ok_or(Error::Closed(What::Stream))?;
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        let taken = st.buffered() + st.pending();
        let why = if st.read_from {
            Some("it was read from already".to_string())
        } else if st.mode == Mode::Discard {
            Some("its process was waited for, which discarded the output nobody had taken".to_string())
        } else if taken > 0 || st.dropped > 0 {
            Some(format!(
                "{} bytes of its output were taken in already, while the program waited on its process \
                 (wait(), write_stdin or a read of its other stream)",
                taken as u64 + st.dropped
            ))
        } else if st.eof {
            Some("its output has ended already".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::Other(format!("{why} (only a stream nothing was taken from can be handed over)")));
        }
        if st.fd.is_none() {
            return Err(Error::Closed(What::Stream));
        }
        Ok(())
    }

    /// The streams read a terminal (`pty`): they cannot be handed over.
    pub fn mark_terminal(&self) {
        self.terminal.set(true);
    }

    /// Put `data` back in front of what stream `which` returns next.
    pub fn unread(&self, which: usize, data: &[u8]) -> Result<(), Error> {
        let mut guard = self.streams[which].borrow_mut();
        let st = match guard.as_mut() {
            Some(st) if st.open => st,
            _ => return Err(Error::Closed(What::Stream)),
        };
        let mut acc = Vec::new();
        acc.try_reserve(data.len() + st.pending()).map_err(|_| "out of memory".to_string())?;
        acc.extend_from_slice(data);
        acc.extend_from_slice(&st.acc[st.acc_pos..]);
        st.acc = acc;
        st.acc_pos = 0;
        st.scan = 0;
        Ok(())
    }

}
