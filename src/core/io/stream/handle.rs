//! The stream handed out to the program.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use crate::core::error::Error;
use super::outputs::SharedOutputs;
use super::Got;
#[cfg(test)]
use super::StreamRead;
use crate::core::io::poller::{Token, Unwatch};

/// A stream handed out to the program.
pub struct Stream {
    outputs: SharedOutputs,
    which: usize,
    token: Token,
    driver: Rc<RefCell<dyn Unwatch>>,
}

impl Stream {
    pub fn new(outputs: SharedOutputs, which: usize, token: Token, driver: Rc<RefCell<dyn Unwatch>>) -> Stream {
        Stream { outputs, which, token, driver }
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn is_closed(&self) -> bool {
        !self.outputs.is_open(self.which)
    }

    #[cfg(test)]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<StreamRead, Error> {
        self.outputs.read(self.which, buf)
    }

    pub fn read_chunk<T>(&mut self, max: usize, f: impl FnOnce(&[u8]) -> T) -> Result<Got<T>, Error> {
        self.outputs.read_chunk(self.which, max, f)
    }

    pub fn read_line<T>(&mut self, keep: bool, f: impl FnOnce(&[u8]) -> T) -> Result<Got<T>, Error> {
        self.outputs.read_line(self.which, keep, f)
    }

    pub fn read_lines_block<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Result<(Got<T>, bool), Error> {
        self.outputs.read_lines_block(self.which, f)
    }

    /// A reader of the lines this stream has buffered (see
    /// `Outputs::buffered_line`), for a fast path held apart from the handle.
    #[cfg_attr(any(feature = "luajit", feature = "lua51"), allow(dead_code))] // only the Lua 5.3/5.4 bindings read lines in C
    pub fn buffered_lines(&self) -> BufferedLines {
        BufferedLines { outputs: self.outputs.clone(), which: self.which }
    }

    pub fn read_whole(&mut self) -> Result<Got<Vec<u8>>, Error> {
        self.outputs.read_whole(self.which)
    }

    pub fn unread(&mut self, data: &[u8]) -> Result<(), Error> {
        self.outputs.unread(self.which, data)
    }

    /// Give the pipe to another child (see `Outputs::hand_over`); the event
    /// loop stops watching it.
    pub fn hand_over(&mut self) -> Result<OwnedFd, Error> {
        let fd = self.outputs.hand_over(self.which)?;
        self.driver.borrow_mut().remove(self.token);
        Ok(fd)
    }

    /// Whether `hand_over` would succeed (see `Outputs::check_hand_over`).
    pub fn check_hand_over(&self) -> Result<(), Error> {
        self.outputs.check_hand_over(self.which)
    }

    /// Which pipe this is: two handles of the same stream are equal here.
    pub fn identity(&self) -> (usize, usize) {
        (Rc::as_ptr(&self.outputs) as usize, self.which)
    }

    /// The read-ahead limit of the process this stream belongs to.
    pub fn buffer_limit(&self) -> usize {
        self.outputs.limit()
    }

    /// Close the stream. Idempotent.
    pub fn close(&mut self) {
        if self.outputs.is_open(self.which) {
            self.driver.borrow_mut().remove(self.token);
            self.outputs.close(self.which);
        }
    }
}

/// The lines a stream has buffered, read without a system call. Holding it
/// keeps the buffers' memory, not the pipe: once the stream is closed it
/// has no lines.
#[cfg_attr(any(feature = "luajit", feature = "lua51"), allow(dead_code))] // only the Lua 5.3/5.4 bindings read lines in C
pub struct BufferedLines {
    outputs: SharedOutputs,
    which: usize,
}

#[cfg_attr(any(feature = "luajit", feature = "lua51"), allow(dead_code))] // only the Lua 5.3/5.4 bindings read lines in C
impl BufferedLines {
    /// The next complete line, if one is buffered (see `Outputs::buffered_line`).
    pub fn next<T>(&self, keep: bool, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        self.outputs.buffered_line(self.which, keep, f)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}
