//! Where a read lands: the thread's scratch buffer, or the next chunk of a
//! bulk buffer's spare capacity.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;

use super::MAX_CHUNK;
use crate::core::os::sys::{self, ReadOutcome};

/// Buffers at least this big are faulted in before a read (see `chunk_to_fill`).
const PREFAULT_FROM: usize = 1 << 20;

/// The next MAX_CHUNK bytes of a bulk buffer's spare capacity, for read()
/// to fill: reserved first (the buffer grows by doubling; running out of
/// memory fails the stream, never the process) and, in a big buffer,
/// faulted in first. Fresh pages that read() itself faults in are faulted
/// while the kernel holds the pipe's lock, and the writer spins on that lock
/// meanwhile (`mutex_spin_on_owner`); prefaulted in one call, they are not.
pub(super) fn chunk_to_fill(buf: &mut Vec<u8>) -> Result<*mut u8, std::collections::TryReserveError> {
    if buf.capacity() - buf.len() < MAX_CHUNK {
        buf.try_reserve(MAX_CHUNK)?;
    }
    let big = buf.capacity() >= PREFAULT_FROM;
    let chunk = &mut buf.spare_capacity_mut()[..MAX_CHUNK];
    if big {
        sys::prefault(chunk);
    }
    Ok(chunk.as_mut_ptr().cast())
}

/// One read of `fd` appended to `buf`, straight into its spare capacity
/// (see `chunk_to_fill`); ENOMEM when the buffer cannot grow.
pub(super) fn read_append(buf: &mut Vec<u8>, fd: RawFd) -> io::Result<ReadOutcome> {
    let chunk = chunk_to_fill(buf).map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
    let len = buf.len();
    // SAFETY: `chunk` points at MAX_CHUNK bytes of `buf`'s spare capacity,
    // reserved by chunk_to_fill: valid for writes, though uninitialised.
    let r = unsafe { sys::read_nonblocking_raw(fd, chunk, MAX_CHUNK) };
    if let Ok(ReadOutcome::Data(n)) = r {
        // SAFETY: read() initialised the first `n` bytes of that capacity.
        unsafe { buf.set_len(len + n) };
    }
    r
}

thread_local! {
    /// One read buffer for every stream of this thread: a stream keeps no
    /// buffer of its own until read-ahead needs one.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_CHUNK]);
}

/// Run `f` with the thread's scratch buffer (MAX_CHUNK bytes).
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with_borrow_mut(|b| f(b))
}
