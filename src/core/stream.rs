//! The parent's reading end of a child's stdout or stderr.

use std::os::fd::{AsRawFd, OwnedFd};

use super::driver::SharedDriver;
use super::poller::Token;
use super::sys::{self, ReadOutcome};

/// Largest chunk one `read` returns.
pub const MAX_CHUNK: usize = 64 * 1024;

pub enum StreamRead {
    /// This many bytes were read into the caller's buffer.
    Data(usize),
    Eof,
    WouldBlock,
}

pub struct Stream {
    fd: Option<OwnedFd>,
    token: Token,
    driver: SharedDriver,
    eof: bool,
}

impl Stream {
    pub fn new(fd: OwnedFd, token: Token, driver: SharedDriver) -> Stream {
        Stream { fd: Some(fd), token, driver, eof: false }
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn is_closed(&self) -> bool {
        self.fd.is_none()
    }

    /// One nonblocking read into `buf` (the caller's: a stream keeps no
    /// buffer of its own, so thousands of idle streams cost no memory).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<StreamRead, String> {
        let fd = match &self.fd {
            Some(fd) => fd.as_raw_fd(),
            None => return Err("stream is closed".into()),
        };
        if self.eof {
            return Ok(StreamRead::Eof);
        }
        match sys::read_nonblocking(fd, buf) {
            Ok(ReadOutcome::Data(n)) => Ok(StreamRead::Data(n)),
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
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}
