//! The parent's reading end of a child's stdout or stderr.

use std::os::fd::{AsRawFd, OwnedFd};

use super::driver::SharedDriver;
use super::poller::Token;
use super::sys::{self, ReadOutcome};

/// Largest chunk one `read` returns.
pub const MAX_CHUNK: usize = 64 * 1024;

pub enum StreamRead<'a> {
    Data(&'a [u8]),
    Eof,
    WouldBlock,
}

pub struct Stream {
    fd: Option<OwnedFd>,
    token: Token,
    driver: SharedDriver,
    eof: bool,
    buf: Vec<u8>,
}

impl Stream {
    pub fn new(fd: OwnedFd, token: Token, driver: SharedDriver) -> Stream {
        Stream { fd: Some(fd), token, driver, eof: false, buf: Vec::new() }
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn is_closed(&self) -> bool {
        self.fd.is_none()
    }

    /// One nonblocking read of at most `max` bytes (capped at MAX_CHUNK).
    pub fn read(&mut self, max: usize) -> Result<StreamRead<'_>, String> {
        let fd = match &self.fd {
            Some(fd) => fd.as_raw_fd(),
            None => return Err("stream is closed".into()),
        };
        if self.eof {
            return Ok(StreamRead::Eof);
        }
        let want = max.clamp(1, MAX_CHUNK);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        match sys::read_nonblocking(fd, &mut self.buf[..want]) {
            Ok(ReadOutcome::Data(n)) => Ok(StreamRead::Data(&self.buf[..n])),
            Ok(ReadOutcome::Eof) => {
                self.eof = true;
                Ok(StreamRead::Eof)
            }
            Ok(ReadOutcome::WouldBlock) => Ok(StreamRead::WouldBlock),
            Err(e) => Err(format!("read failed: {}", sys::describe(&e))),
        }
    }

    /// Close the stream. Idempotent.
    pub fn close(&mut self) {
        if self.fd.is_some() {
            self.driver.borrow_mut().remove(self.token);
            self.fd = None;
            self.buf = Vec::new();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}
