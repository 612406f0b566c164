//! The parent's reading ends of a child's stdout and stderr.
//!
//! Normally a stream is read straight from its pipe, so a slow reader slows
//! the child down (backpressure, flat memory). But a child writes to both of
//! its outputs, and a program usually reads one at a time: while it is
//! blocked on one stream of a process, or on `wait()`, a full pipe on the
//! other would stop the child, and the program would wait forever. So from
//! the moment a program blocks like that, the event loop takes in the other
//! streams ("read-ahead") into a buffer that later reads return first.
//!
//! Read-ahead is bounded per process (`buffer_limit`, 16 MiB by default):
//! past it the oldest unread bytes of the stream being filled are dropped,
//! and the next read of that stream reports how many. The child never
//! stalls on output nobody reads, and memory never grows without bound.
//! Output of a stream nobody obtained is discarded once `wait()` runs: it
//! can never be read after that.
//!
//! The parts: `state` (one stream's buffers and flags), `buffer` (where a
//! read lands: the scratch buffer, a bulk buffer's next chunk), `outputs`
//! (a process's two streams, read-ahead and its limit, closing, handing
//! over), `reads` (the five kinds of read a program makes) and `handle`
//! (the stream handed out to the program).

mod buffer;
mod handle;
mod outputs;
mod reads;
mod state;
#[cfg(test)]
mod tests;

#[cfg_attr(any(feature = "luajit", feature = "lua51"), allow(unused_imports))] // (line readers: Lua 5.3/5.4)
pub use handle::{BufferedLines, Stream};
pub use outputs::{Outputs, SharedOutputs, Wakeups};

/// Largest chunk one `read` returns.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Read-ahead allowed per process unless `buffer_limit` says otherwise.
pub const DEFAULT_BUFFER_LIMIT: usize = 16 << 20;

/// What a line or whole read produced.
pub enum Got<T> {
    /// A line (or everything): what the caller's function made of it.
    Data(T),
    Eof,
    WouldBlock,
    /// This many bytes were dropped since the last read (buffer_limit).
    Dropped(u64),
}

pub enum StreamRead {
    /// This many bytes were copied into the caller's buffer.
    Data(usize),
    Eof,
    WouldBlock,
    /// This many bytes were dropped since the last read (buffer_limit).
    Dropped(u64),
}

