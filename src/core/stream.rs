//! The parent's reading end of a child's stdout or stderr.
//!
//! Normally a stream is read straight from its pipe, so a slow reader slows
//! the child down (backpressure, flat memory). While `wait()` runs, though,
//! a stream that was handed out but is not being read would block the child
//! on a full pipe and `wait()` forever; so for the duration the event loop
//! reads it into the stream's own buffer, which later reads return first.
//! Output is never lost by waiting before reading, and never deadlocks.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use super::driver::SharedDriver;
use super::poller::Token;
use super::sys::{self, ReadOutcome};

/// Largest chunk one `read` returns.
pub const MAX_CHUNK: usize = 64 * 1024;

pub enum StreamRead {
    /// This many bytes were copied into the caller's buffer.
    Data(usize),
    Eof,
    WouldBlock,
}

/// What a stream and the event loop share.
pub struct StreamState {
    fd: Option<OwnedFd>,
    eof: bool,
    error: Option<String>,
    /// Output read ahead by the event loop (see the module comment).
    buffer: Vec<u8>,
    pos: usize,
    /// The pipe was given a bulk-sized buffer (tried once).
    grown: bool,
}

pub type SharedStream = Rc<RefCell<StreamState>>;

impl StreamState {
    pub fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    /// Read everything the pipe holds now into the buffer. Returns true if
    /// anything changed (data, end-of-file, error).
    pub fn fill(&mut self) -> bool {
        let fd = match &self.fd {
            Some(fd) if !self.eof && self.error.is_none() => fd.as_raw_fd(),
            _ => return false,
        };
        if self.pos > 0 && self.pos * 2 >= self.buffer.len() {
            self.buffer.drain(..self.pos);
            self.pos = 0;
        }
        let mut progressed = false;
        loop {
            let len = self.buffer.len();
            self.buffer.resize(len + MAX_CHUNK, 0);
            let r = sys::read_nonblocking(fd, &mut self.buffer[len..]);
            let n = match &r {
                Ok(ReadOutcome::Data(n)) => *n,
                _ => 0,
            };
            self.buffer.truncate(len + n);
            match r {
                Ok(ReadOutcome::Data(_)) => progressed = true,
                Ok(ReadOutcome::WouldBlock) => return progressed,
                Ok(ReadOutcome::Eof) => {
                    self.eof = true;
                    return true;
                }
                Err(e) => {
                    self.error = Some(format!("read failed: {}", sys::describe(&e)));
                    return true;
                }
            }
        }
    }

    /// Bytes held in the buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.pos
    }
}

pub struct Stream {
    state: SharedStream,
    token: Token,
    driver: SharedDriver,
}

impl Stream {
    pub fn new(fd: OwnedFd, token: Token, driver: SharedDriver) -> Stream {
        let state = StreamState { fd: Some(fd), eof: false, error: None, buffer: Vec::new(), pos: 0, grown: false };
        Stream { state: Rc::new(RefCell::new(state)), token, driver }
    }

    pub fn token(&self) -> Token {
        self.token
    }

    /// The state shared with the event loop (for read-ahead during wait).
    pub fn shared(&self) -> SharedStream {
        self.state.clone()
    }

    pub fn is_closed(&self) -> bool {
        !self.state.borrow().is_open()
    }

    /// One nonblocking read into `buf` (the caller's: a stream keeps no read
    /// buffer of its own, so thousands of idle streams cost no memory).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<StreamRead, String> {
        let mut st = self.state.borrow_mut();
        let fd = match &st.fd {
            Some(fd) => fd.as_raw_fd(),
            None => return Err("stream is closed".into()),
        };
        if st.buffered() > 0 {
            let n = st.buffered().min(buf.len());
            let from = st.pos;
            buf[..n].copy_from_slice(&st.buffer[from..from + n]);
            st.pos += n;
            if st.pos == st.buffer.len() {
                st.buffer = Vec::new();
                st.pos = 0;
            }
            return Ok(StreamRead::Data(n));
        }
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        if st.eof {
            return Ok(StreamRead::Eof);
        }
        match sys::read_nonblocking(fd, buf) {
            Ok(ReadOutcome::Data(n)) => {
                if n == MAX_CHUNK && !st.grown {
                    // A full chunk: this stream carries bulk data.
                    st.grown = true;
                    sys::grow_pipe(fd);
                }
                Ok(StreamRead::Data(n))
            }
            Ok(ReadOutcome::Eof) => {
                st.eof = true;
                Ok(StreamRead::Eof)
            }
            Ok(ReadOutcome::WouldBlock) => Ok(StreamRead::WouldBlock),
            Err(e) => Err(format!("read failed: {}", sys::describe(&e))),
        }
    }

    /// Close the stream. Idempotent.
    pub fn close(&mut self) {
        let mut st = self.state.borrow_mut();
        if st.fd.is_some() {
            self.driver.borrow_mut().remove(self.token);
            st.fd = None;
            st.buffer = Vec::new();
            st.pos = 0;
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}
