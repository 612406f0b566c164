//! The parent's side of a child's stdin: an ordered write queue.
//!
//! `write_stdin` must never block the whole program on a full pipe, never
//! raise SIGPIPE, and deliver everything in order. Data is written straight
//! to the pipe while it has room; the rest waits here and the event loop
//! writes it as the child reads. End-of-file (`close`) is sent only once the
//! queue is empty.

use std::cell::Cell;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::core::error::{Error, What};
use crate::core::os::sys::{self, SignalsHeld};

pub struct StdinPipe {
    fd: Option<OwnedFd>,
    queue: VecDeque<Vec<u8>>,
    /// Bytes of `queue[0]` already written.
    offset: usize,
    queued: usize,
    /// Sticky: once the pipe broke, every later write reports it.
    error: Option<Error>,
    close_requested: bool,
    /// The pipe was given a bulk-sized buffer (tried once, when it first filled).
    grown: bool,
    /// A socket (stdin = "socket"): written with send(MSG_NOSIGNAL).
    socket: bool,
    /// Written with pwritev2(RWF_NOSIGNAL), one system call a write,
    /// until the kernel refuses the flag (then SIGPIPE is blocked around
    /// each write instead, see sys::write_nosigpipe).
    nosignal: Cell<bool>,
    /// A caller writes from its own data and waits for room (see
    /// `write_some`): the next writable edge is news even with the queue empty.
    want_room: bool,
}

impl StdinPipe {
    pub fn new(fd: OwnedFd, socket: bool) -> StdinPipe {
        StdinPipe {
            socket,
            fd: Some(fd),
            queue: VecDeque::new(),
            offset: 0,
            queued: 0,
            error: None,
            close_requested: false,
            grown: false,
            want_room: false,
            nosignal: Cell::new(!socket),
        }
    }

    pub fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Bytes accepted but not yet written to the pipe.
    pub fn queued(&self) -> usize {
        self.queued
    }

    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.fd.is_some() && !self.close_requested && self.error.is_none()
    }

    /// The error that ended the pipe, if any.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Accept `data`: write what fits now, queue the rest.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.close_requested || self.fd.is_none() {
            return Err(Error::Closed(What::Stdin));
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut written = 0;
        if self.queue.is_empty() {
            written = self.write_some(data, None)?;
        }
        if written < data.len() {
            self.queue.push_back(data[written..].to_vec());
            self.queued += data.len() - written;
        }
        Ok(())
    }

    /// Write what the pipe takes of `data` now, without queueing anything:
    /// the bytes written. Only with the queue empty (data stays in order).
    /// A pipe that fills up is bulk input: it gets a bigger buffer, once.
    /// `held`: the host's signals are held back (one system call a write).
    pub fn write_some(&mut self, data: &[u8], held: Option<&SignalsHeld>) -> Result<usize, Error> {
        debug_assert!(self.queue.is_empty());
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.close_requested || self.fd.is_none() {
            return Err(Error::Closed(What::Stdin));
        }
        let mut written = self.write_now(data, held)?;
        if written < data.len() && !self.grown && !self.socket {
            self.grown = true;
            if let Some(fd) = self.raw_fd() {
                sys::grow_pipe(fd);
                written += self.write_now(&data[written..], held)?;
            }
        }
        Ok(written)
    }

    /// The caller of `write_some` found the pipe full and waits for room:
    /// the event loop reports the next writable edge, queue or not.
    pub fn want_room(&mut self) {
        self.want_room = true;
    }

    pub fn wants_room(&self) -> bool {
        self.want_room
    }

    /// Write queued data until the pipe is full or the queue empty; send
    /// end-of-file once it is empty and a close was requested. Returns true if
    /// anything changed (bytes written, closed, or failed).
    pub fn flush(&mut self) -> bool {
        let mut progressed = false;
        while let Some(front) = self.queue.front() {
            let chunk = &front[self.offset..];
            let fd = match &self.fd {
                Some(fd) => fd.as_raw_fd(),
                None => break,
            };
            match self.write_fd(fd, chunk, None) {
                Ok(Some(n)) => {
                    progressed = true;
                    self.queued -= n;
                    if n == chunk.len() {
                        self.queue.pop_front();
                        self.offset = 0;
                    } else {
                        self.offset += n;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(&e);
                    return true;
                }
            }
        }
        if self.queue.is_empty() && self.close_requested && self.fd.is_some() {
            self.fd = None;
            progressed = true;
        }
        if std::mem::take(&mut self.want_room) && self.queue.is_empty() && self.fd.is_some() {
            progressed = true;
        }
        progressed
    }

    /// Request end-of-file after the queued data. Idempotent.
    pub fn close(&mut self) {
        self.close_requested = true;
        if self.queue.is_empty() {
            self.fd = None;
        }
    }

    /// Close at once, dropping anything still queued (the child is gone).
    pub fn discard(&mut self) {
        self.close_requested = true;
        self.queue.clear();
        self.queued = 0;
        self.offset = 0;
        self.fd = None;
    }

    fn write_fd(&self, fd: RawFd, data: &[u8], held: Option<&SignalsHeld>) -> std::io::Result<Option<usize>> {
        if self.nosignal.get() {
            match sys::write_nosignal_flag(fd, data) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => self.nosignal.set(false),
                r => return r,
            }
        }
        match (self.socket, held) {
            (true, _) => sys::send_nosignal(fd, data),
            (false, Some(h)) => sys::write_nosigpipe_held(fd, data, h),
            (false, None) => sys::write_nosigpipe(fd, data),
        }
    }

    fn write_now(&mut self, data: &[u8], held: Option<&SignalsHeld>) -> Result<usize, Error> {
        let fd = self.fd.as_ref().map(|f| f.as_raw_fd()).ok_or(Error::Closed(What::Stdin))?;
        let mut done = 0;
        while done < data.len() {
            match self.write_fd(fd, &data[done..], held) {
                Ok(Some(n)) => done += n,
                Ok(None) => break,
                Err(e) => {
                    self.fail(&e);
                    return Err(self.error.clone().unwrap());
                }
            }
        }
        Ok(done)
    }

    fn fail(&mut self, e: &std::io::Error) {
        self.error = Some(if e.raw_os_error() == Some(libc::EPIPE) {
            let why = sys::describe(e);
            Error::Os { message: format!("stdin is closed: the child exited or closed its input ({why})"), errno: libc::EPIPE }
        } else {
            Error::os("writing to stdin failed", e)
        });
        self.queue.clear();
        self.queued = 0;
        self.offset = 0;
        self.fd = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::os::sys::{pipe, read_nonblocking, set_nonblocking, ReadOutcome};

    fn drain(fd: RawFd, out: &mut Vec<u8>) -> bool {
        let mut buf = vec![0u8; 65536];
        loop {
            match read_nonblocking(fd, &mut buf).unwrap() {
                ReadOutcome::Data(n) => out.extend_from_slice(&buf[..n]),
                ReadOutcome::Eof => return true,
                ReadOutcome::WouldBlock => return false,
            }
        }
    }

    #[test]
    fn data_beyond_the_pipe_is_queued_and_delivered_in_order_then_eof() {
        let (r, w) = pipe().unwrap();
        set_nonblocking(r.as_raw_fd()).unwrap();
        set_nonblocking(w.as_raw_fd()).unwrap();
        let mut p = StdinPipe::new(w, false);
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        p.push(&data[..600_000]).unwrap();
        p.push(&data[600_000..]).unwrap();
        assert!(p.queued() > 0, "a 64 KiB pipe cannot hold 1 MB");
        p.close();
        assert!(!p.is_open());
        let mut got = Vec::new();
        let mut eof = false;
        for _ in 0..1000 {
            eof = drain(r.as_raw_fd(), &mut got);
            p.flush();
            if eof {
                break;
            }
        }
        assert!(eof);
        assert_eq!(got, data);
    }

    #[test]
    fn writing_to_a_closed_reader_fails_and_stays_failed() {
        let (r, w) = pipe().unwrap();
        set_nonblocking(w.as_raw_fd()).unwrap();
        drop(r);
        let mut p = StdinPipe::new(w, false);
        let e = p.push(b"hello").unwrap_err();
        assert!(e.to_string().contains("Broken pipe") && e.code() == "EPIPE", "{e}");
        assert!(p.push(b"again").is_err());
    }

    #[test]
    fn without_rwf_nosignal_a_closed_reader_still_gives_epipe_and_no_sigpipe() {
        // The path for kernels that refuse pwritev2's RWF_NOSIGNAL: SIGPIPE
        // blocked around the write (the test process would die of it).
        let (r, w) = pipe().unwrap();
        set_nonblocking(w.as_raw_fd()).unwrap();
        drop(r);
        let mut p = StdinPipe::new(w, false);
        p.nosignal.set(false);
        let e = p.push(b"hello").unwrap_err();
        assert!(e.to_string().contains("Broken pipe"), "{e}");
        assert!(!p.nosignal.get());
    }

    #[test]
    fn writes_after_close_are_refused() {
        let (_r, w) = pipe().unwrap();
        let mut p = StdinPipe::new(w, false);
        p.close();
        p.close();
        assert_eq!(p.push(b"x").unwrap_err(), Error::Closed(What::Stdin));
    }
}
