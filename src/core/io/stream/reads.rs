//! The reads a program makes: a chunk, a line, a block of lines, a buffered
//! line without a system call, everything to the end.

use std::os::fd::AsRawFd;

use crate::core::error::{Error, What};
use super::buffer::{read_append, with_scratch};
use super::outputs::Outputs;
use super::state::{gone, out_of_memory, take_acc, StreamState};
use super::{Got, StreamRead, MAX_CHUNK};
use crate::core::os::sys::{self, ReadOutcome};

/// At most this many bytes of lines are handed to Lua at once: the strings
/// of one batch stay in the CPU's caches until the program takes them (with
/// a whole 64 KiB of short lines at once, the interpreter's string table
/// misses the cache).
pub(super) const LINES_BATCH: usize = 8 * 1024;

/// What one read of a bulk stream takes: what its grown pipe holds.
const BULK_READ: usize = sys::BULK_PIPE_SIZE as usize;

impl Outputs {
    /// One read of stream `which` into `buf`: read-ahead data first, then
    /// the pipe. Reports dropped bytes once, before the data that follows.
    pub fn read(&self, which: usize, buf: &mut [u8]) -> Result<StreamRead, Error> {
        let mut guard = self.streams[which].borrow_mut();
        let st = match guard.as_mut() {
            Some(st) if st.open => st,
            other => return Err(gone(other.as_deref())),
        };
        st.read_from = true;
        if st.pending() > 0 {
            let n = st.pending().min(buf.len());
            buf[..n].copy_from_slice(&st.acc[st.acc_pos..st.acc_pos + n]);
            st.acc_pos += n;
            st.scan = st.scan.max(st.acc_pos);
            if st.acc_pos == st.acc.len() {
                st.clear_acc();
            }
            return Ok(StreamRead::Data(n));
        }
        if st.dropped > 0 {
            let n = st.dropped;
            st.dropped = 0;
            return Ok(StreamRead::Dropped(n));
        }
        if st.buffered() > 0 {
            let n = st.buffered().min(buf.len());
            buf[..n].copy_from_slice(&st.buffer[st.pos..st.pos + n]);
            self.consume(st, n);
            return Ok(StreamRead::Data(n));
        }
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        if st.eof {
            return Ok(StreamRead::Eof);
        }
        let fd = st.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
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
                st.ended();
                Ok(StreamRead::Eof)
            }
            Ok(ReadOutcome::WouldBlock) => {
                drop(guard);
                // The program is about to block on this stream: the other
                // one must not hold the child up meanwhile.
                self.read_ahead(1 - which);
                Ok(StreamRead::WouldBlock)
            }
            Err(e) => Err(Error::os("read failed", &e)),
        }
    }

    /// A chunk of at most `max` bytes of stream `which`, handed to `f`
    /// where it lies (no copy into a buffer of the caller's): read-ahead
    /// data first, then the pipe. A stream that proved to carry bulk data
    /// (its pipe was grown) is read a whole pipe's worth at a time into the
    /// reader's own bytes, which the next chunks come from: a quarter of
    /// the reads, and of the turns at the pipe's lock with the writer,
    /// whose copy-in then runs while the program handles those chunks.
    pub fn read_chunk<T>(&self, which: usize, max: usize, f: impl FnOnce(&[u8]) -> T) -> Result<Got<T>, Error> {
        let mut guard = self.streams[which].borrow_mut();
        let st = match guard.as_mut() {
            Some(st) if st.open => st,
            other => return Err(gone(other.as_deref())),
        };
        st.read_from = true;
        if st.pending() == 0 && st.dropped == 0 && st.buffered() == 0 && st.error.is_none() && !st.eof && st.grown {
            let fd = st.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            st.clear_acc();
            if st.acc.try_reserve(BULK_READ).is_err() {
                return Err(out_of_memory(BULK_READ));
            }
            // SAFETY: try_reserve left at least BULK_READ bytes of spare
            // capacity after the (empty) contents: valid for writes.
            let r = unsafe { sys::read_nonblocking_raw(fd, st.acc.as_mut_ptr(), BULK_READ) };
            match r {
                // SAFETY: read() initialised the first `n` bytes.
                Ok(ReadOutcome::Data(n)) => unsafe { st.acc.set_len(n) },
                Ok(ReadOutcome::Eof) => {
                    st.ended();
                    return Ok(Got::Eof);
                }
                Ok(ReadOutcome::WouldBlock) => {
                    drop(guard);
                    self.read_ahead(1 - which);
                    return Ok(Got::WouldBlock);
                }
                Err(e) => return Err(Error::os("read failed", &e)),
            }
        }
        if st.pending() > 0 {
            let n = st.pending().min(max);
            let v = f(&st.acc[st.acc_pos..st.acc_pos + n]);
            st.acc_pos += n;
            st.scan = st.scan.max(st.acc_pos);
            if st.acc_pos == st.acc.len() {
                st.clear_acc();
            }
            return Ok(Got::Data(v));
        }
        if st.dropped > 0 {
            let n = st.dropped;
            st.dropped = 0;
            return Ok(Got::Dropped(n));
        }
        if st.buffered() > 0 {
            let n = st.buffered().min(max);
            let v = f(&st.buffer[st.pos..st.pos + n]);
            self.consume(st, n);
            return Ok(Got::Data(v));
        }
        drop(guard);
        // A stream not known to be bulk: one read through the scratch buffer.
        with_scratch(|buf| match self.read(which, &mut buf[..max.min(MAX_CHUNK)])? {
            StreamRead::Data(n) => Ok(Got::Data(f(&buf[..n]))),
            StreamRead::Eof => Ok(Got::Eof),
            StreamRead::WouldBlock => Ok(Got::WouldBlock),
            StreamRead::Dropped(n) => Ok(Got::Dropped(n)),
        })
    }

    /// Move what the read-ahead took in behind the reader's own bytes.
    pub(super) fn absorb_buffered(&self, st: &mut StreamState) -> Result<(), Error> {
        let held = st.buffered();
        if st.acc.try_reserve(held).is_err() {
            return Err(out_of_memory(st.pending() + held));
        }
        let from = st.pos;
        st.acc.extend_from_slice(&st.buffer[from..from + held]);
        self.consume(st, held);
        Ok(())
    }

    /// Make progress on a line or whole read of stream `which`: move
    /// read-ahead data behind the reader's own bytes, or read the pipe into
    /// them. `Ok(None)`: there is more to look at; `Ok(Some(..))`: the
    /// outcome for the caller (end, would block, dropped bytes).
    pub(super) fn pull<T>(&self, st: &mut StreamState, deferred: &mut bool) -> Result<Option<Got<T>>, Error> {
        if st.dropped > 0 {
            let n = st.dropped;
            st.dropped = 0;
            return Ok(Some(Got::Dropped(n)));
        }
        if st.buffered() > 0 {
            self.absorb_buffered(st)?;
            return Ok(None);
        }
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        if st.eof {
            return Ok(Some(Got::Eof));
        }
        let fd = match &st.fd {
            Some(fd) => fd.as_raw_fd(),
            None => return Err(Error::Closed(What::Stream)),
        };
        if st.acc_pos > 0 && st.acc_pos * 2 >= st.acc.len() {
            st.acc.drain(..st.acc_pos);
            st.scan -= st.acc_pos;
            st.acc_pos = 0;
        }
        // A reader's buffer that already holds a chunk's worth is bulk: it
        // grows (by doubling) and the pipe is read straight into it, a chunk
        // at a time. (Not bigger reads, up to what a grown pipe holds: the
        // kernel would copy more while holding the pipe, and the writer
        // would wait.) Otherwise the read goes through
        // the scratch buffer and only the bytes that came are kept: a short
        // output never costs a fresh MAX_CHUNK allocation (which, freed and
        // trimmed each time, would be faulted in again for every process).
        let r = if st.acc.len() >= MAX_CHUNK || st.acc.capacity() - st.acc.len() >= MAX_CHUNK {
            read_append(&mut st.acc, fd)
        } else {
            with_scratch(|buf| {
                let r = sys::read_nonblocking(fd, buf);
                if let Ok(ReadOutcome::Data(n)) = r {
                    if st.acc.try_reserve(n).is_err() {
                        return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
                    }
                    st.acc.extend_from_slice(&buf[..n]);
                }
                r
            })
        };
        match r {
            Ok(ReadOutcome::Data(n)) => {
                if n >= MAX_CHUNK && !st.grown {
                    st.grown = true;
                    sys::grow_pipe(fd);
                }
                Ok(None)
            }
            Ok(ReadOutcome::Eof) => {
                st.ended(); // (a terminal's EIO included: see sys::read_nonblocking)
                Ok(None)
            }
            Ok(ReadOutcome::WouldBlock) => {
                // The reader is about to block on this stream: the other one
                // must not hold the child up (done once the borrow ends).
                *deferred = true;
                Ok(Some(Got::WouldBlock))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => Err(out_of_memory(st.pending())),
            Err(e) => {
                st.error = Some(Error::os("read failed", &e));
                Ok(None)
            }
        }
    }

    /// Run a line, block or whole read of stream `which` on its state; if
    /// the read found the pipe empty (the reader is about to block), let the
    /// other stream be taken in, once the state is no longer borrowed.
    pub(super) fn with_reader<R>(
        &self,
        which: usize,
        read: impl FnOnce(&mut StreamState, &mut bool) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut deferred = false;
        let r = {
            let mut guard = self.streams[which].borrow_mut();
            match guard.as_mut() {
                Some(st) if st.open => {
                    st.read_from = true;
                    read(st, &mut deferred)
                }
                other => Err(gone(other.as_deref())),
            }
        };
        if deferred {
            self.read_ahead(1 - which);
        }
        r
    }

    /// The next line of stream `which` (with its newline when `keep`), or
    /// its last line without one, passed to `f`. At most one pipe read.
    pub fn read_line<T>(&self, which: usize, keep: bool, f: impl FnOnce(&[u8]) -> T) -> Result<Got<T>, Error> {
        self.with_reader(which, |st, deferred| {
            loop {
                if let Some(end) = st.find_line_end() {
                    return Ok(Got::Data(st.take_line(end, keep, f)));
                }
                match self.pull::<T>(st, deferred)? {
                    None => continue,
                    Some(Got::Eof) if st.pending() > 0 => {
                        let v = f(&st.acc[st.acc_pos..]);
                        st.clear_acc();
                        return Ok(Got::Data(v));
                    }
                    Some(other) => return Ok(other),
                }
            }
        })
    }

    /// The next line of stream `which` if a complete one is buffered
    /// already, passed to `f`; otherwise None, and nothing else happens: no
    /// system call, no end or error reported (a closed stream, or one in use
    /// by the caller, has none). The fast path of a line read, which falls
    /// back to `read_line` on None.
    #[cfg_attr(any(feature = "luajit", feature = "lua51"), allow(dead_code))] // only the Lua 5.3/5.4 bindings read lines in C
    pub fn buffered_line<T>(&self, which: usize, keep: bool, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        let mut guard = self.streams[which].try_borrow_mut().ok()?;
        let st = guard.as_mut().filter(|st| st.open)?;
        let end = st.find_line_end()?;
        st.read_from = true;
        Some(st.take_line(end, keep, f))
    }

    /// The complete lines of stream `which` available now, as one piece of
    /// at most LINES_BATCH bytes (or one longer line) ending with a newline
    /// (reading the pipe once if there is none), or the stream's last line,
    /// which has no newline (then the flag is true).
    pub fn read_lines_block<T>(&self, which: usize, f: impl FnOnce(&[u8]) -> T) -> Result<(Got<T>, bool), Error> {
        self.with_reader(which, |st, deferred| {
            loop {
                let window = st.acc.len().min(st.acc_pos + LINES_BATCH).max(st.scan);
                let found = match memchr::memrchr(b'\n', &st.acc[st.scan..window]) {
                    Some(i) => Some(st.scan + i),
                    // None in the window: the first after it (a long line).
                    None => memchr::memchr(b'\n', &st.acc[window..]).map(|i| window + i),
                };
                if let Some(nl) = found {
                    let end = nl + 1;
                    let v = f(&st.acc[st.acc_pos..end]);
                    st.acc_pos = end;
                    st.scan = end;
                    if st.acc_pos == st.acc.len() {
                        st.clear_acc();
                    }
                    return Ok((Got::Data(v), false));
                }
                st.scan = st.acc.len();
                match self.pull::<T>(st, deferred)? {
                    None => continue,
                    Some(Got::Eof) if st.pending() > 0 => {
                        let v = f(&st.acc[st.acc_pos..]);
                        st.clear_acc();
                        return Ok((Got::Data(v), true));
                    }
                    Some(other) => return Ok((other, false)),
                }
            }
        })
    }

    /// Stream `which` is read to its end by `read_whole` (see `whole`),
    /// which keeps at most `cap` bytes of it.
    pub fn keep_whole(&self, which: usize, cap: Option<usize>) {
        if let Some(st) = self.streams[which].borrow_mut().as_mut() {
            st.whole = true;
            st.whole_cap = cap;
        }
    }

    /// Everything up to the end of stream `which` (or its first `cap`
    /// bytes: the rest is read and thrown away), moved out (not copied)
    /// once the end is reached; `WouldBlock` until then.
    pub fn read_whole(&self, which: usize) -> Result<Got<Vec<u8>>, Error> {
        self.with_reader(which, |st, deferred| loop {
            if st.truncated {
                match discard_pipe(st) {
                    Ok(true) => {}
                    Ok(false) => {
                        *deferred = true;
                        return Ok(Got::WouldBlock);
                    }
                    Err(e) => st.error = Some(Error::os("read failed", &e)),
                }
            }
            match self.pull::<Vec<u8>>(st, deferred)? {
                None => {
                    if let Some(cap) = st.whole_cap.filter(|cap| st.pending() > *cap) {
                        st.acc.truncate(st.acc_pos + cap);
                        st.truncated = true;
                    }
                    continue;
                }
                Some(Got::Eof) => return Ok(Got::Data(take_acc(st))),
                Some(other) => return Ok(other),
            }
        })
    }

    /// Whether a whole read of stream `which` had more than its cap.
    pub fn truncated(&self, which: usize) -> bool {
        self.streams[which].borrow().as_ref().is_some_and(|st| st.truncated)
    }

    /// What stream `which` took in so far, moved out (a whole read that
    /// stops before the end).
    pub fn take_partial(&self, which: usize) -> Vec<u8> {
        match self.streams[which].borrow_mut().as_mut() {
            Some(st) => {
                // (Out of memory: what the read-ahead holds is left behind.)
                if st.buffered() > 0 {
                    let _ = self.absorb_buffered(st);
                }
                take_acc(st)
            }
            None => Vec::new(),
        }
    }
}

/// Read and throw away what the pipe of `st` holds (a whole read past its
/// cap): `Ok(true)` at its end (marked), `Ok(false)` when it is empty for
/// now.
fn discard_pipe(st: &mut StreamState) -> std::io::Result<bool> {
    let Some(fd) = st.fd.as_ref().map(|f| f.as_raw_fd()) else { return Ok(true) };
    loop {
        match with_scratch(|buf| sys::read_nonblocking(fd, buf))? {
            ReadOutcome::Data(_) => {}
            ReadOutcome::WouldBlock => return Ok(false),
            ReadOutcome::Eof => {
                st.ended();
                return Ok(true);
            }
        }
    }
}
