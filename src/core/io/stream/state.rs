//! One stream's state: its pipe, what was read ahead, what the reader holds.

use std::os::fd::OwnedFd;

use super::MAX_CHUNK;
use crate::core::error::{Error, What};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Read only by whoever holds the stream.
    Direct,
    /// Also read by the event loop into the buffer.
    Ahead,
    /// Nobody can read it any more: the event loop throws it away.
    Discard,
}

pub(super) struct StreamState {
    /// The pipe, until its end was read (see `ended`), the stream closed or
    /// handed over.
    pub(super) fd: Option<OwnedFd>,
    /// Not closed by its owner nor handed over: reads are answered (from
    /// what was buffered, then the end) also once the pipe itself is gone.
    pub(super) open: bool,
    pub(super) eof: bool,
    pub(super) error: Option<Error>,
    pub(super) buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed.
    pub(super) pos: usize,
    /// The pipe was given a bulk-sized buffer (tried once).
    pub(super) grown: bool,
    pub(super) mode: Mode,
    /// Bytes dropped past the limit and not reported yet.
    pub(super) dropped: u64,
    /// The reader's own bytes (taken for a line or whole read and not
    /// returned yet): older than anything in `buffer`.
    pub(super) acc: Vec<u8>,
    /// Bytes of `acc` already returned.
    pub(super) acc_pos: usize,
    /// The program has read it (or tried to): it can no longer be handed
    /// to another process without taking something from its reader.
    pub(super) read_from: bool,
    /// `acc[acc_pos..scan]` holds no newline (not searched twice).
    pub(super) scan: usize,
    /// Read whole by its owner (`run`), who reads it whenever anything of
    /// the process stirs: never read ahead, so never limited or dropped.
    pub(super) whole: bool,
    /// A whole read keeps at most this many bytes (`run`'s max_output);
    /// `truncated`: more came, and was read and thrown away.
    pub(super) whole_cap: Option<usize>,
    pub(super) truncated: bool,
}

impl StreamState {
    /// The pipe reached its end: nothing more can come, so its descriptor
    /// closes now rather than with the handle (a loop that reads many
    /// processes to their end must not run out of descriptors while the
    /// collector has not run). What was read stays for the reader.
    pub(super) fn ended(&mut self) {
        self.eof = true;
        self.fd = None;
    }

    pub(super) fn pending(&self) -> usize {
        self.acc.len() - self.acc_pos
    }

    pub(super) fn clear_acc(&mut self) {
        self.acc.clear();
        self.acc_pos = 0;
        self.scan = 0;
        // A whole read of a big output leaves a big buffer: give it back
        // rather than keep it for the stream's life.
        if self.acc.capacity() > ACC_KEEP {
            self.acc = Vec::new();
        }
    }

    pub(super) fn buffered(&self) -> usize {
        self.buffer.len() - self.pos
    }

    /// Where the next complete line in `acc` ends (just past its newline),
    /// searching from `scan`; remembers how far it searched.
    pub(super) fn find_line_end(&mut self) -> Option<usize> {
        match memchr::memchr(b'\n', &self.acc[self.scan..]) {
            Some(i) => Some(self.scan + i + 1),
            None => {
                self.scan = self.acc.len(); // searched: no newline up to here
                None
            }
        }
    }

    /// Take `acc[acc_pos..end]` (a line found by `find_line_end`), passed to
    /// `f` without its newline unless `keep`.
    pub(super) fn take_line<T>(&mut self, end: usize, keep: bool, f: impl FnOnce(&[u8]) -> T) -> T {
        let line_end = if keep { end } else { end - 1 };
        let v = f(&self.acc[self.acc_pos..line_end]);
        self.acc_pos = end;
        self.scan = end;
        if self.acc_pos == self.acc.len() {
            self.clear_acc();
        }
        v
    }
}

/// Why a reader's buffer could not grow by the bytes it must hold.
pub(super) fn out_of_memory(bytes: usize) -> Error {
    Error::Os { message: format!("cannot hold {bytes} bytes of output in memory: out of memory"), errno: libc::ENOMEM }
}

/// The reader's bytes not returned yet, moved out of `st`.
pub(super) fn take_acc(st: &mut StreamState) -> Vec<u8> {
    let mut v = std::mem::take(&mut st.acc);
    v.drain(..st.acc_pos);
    st.clear_acc();
    v
}

/// Why a stream without a pipe cannot be read: closed, or handed over.
pub(super) fn gone(st: Option<&StreamState>) -> Error {
    match st.and_then(|s| s.error.as_ref()) {
        Some(Error::HandedOver) => Error::HandedOver,
        _ => Error::Closed(What::Stream),
    }
}

/// The capacity of a reader's buffer kept after a read (lines and chunks
/// reuse it); anything bigger is freed.
pub(super) const ACC_KEEP: usize = 4 * MAX_CHUNK;
