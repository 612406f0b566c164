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

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use crate::core::io::poller::{Token, Unwatch};
use crate::core::os::sys::{self, ReadOutcome};

/// Largest chunk one `read` returns.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Read-ahead allowed per process unless `buffer_limit` says otherwise.
pub const DEFAULT_BUFFER_LIMIT: usize = 16 << 20;

/// Reads one fill may do before the event loop turns again, so that an
/// endless writer cannot keep the loop in one fill forever.
const FILL_READS: usize = 64;

/// Buffers at least this big are faulted in before a read (see `chunk_to_fill`).
const PREFAULT_FROM: usize = 1 << 20;

/// The next MAX_CHUNK bytes of a bulk buffer's spare capacity, for read()
/// to fill: reserved first (the buffer grows by doubling; running out of
/// memory fails the stream, never the process) and, in a big buffer,
/// faulted in first. Fresh pages that read() itself faults in are faulted
/// while the kernel holds the pipe's lock, and the writer spins on it:
/// `perf` of a 200 MiB capture showed the writer 10 % in
/// `mutex_spin_on_owner`; prefaulted in one call, they are not.
fn chunk_to_fill(buf: &mut Vec<u8>) -> Result<*mut u8, std::collections::TryReserveError> {
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

thread_local! {
    /// One read buffer for every stream of this thread: a stream keeps no
    /// buffer of its own until read-ahead needs one.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_CHUNK]);
}

/// Run `f` with the thread's scratch buffer (MAX_CHUNK bytes).
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with_borrow_mut(|b| f(b))
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read only by whoever holds the stream.
    Direct,
    /// Also read by the event loop into the buffer.
    Ahead,
    /// Nobody can read it any more: the event loop throws it away.
    Discard,
}

struct StreamState {
    /// The pipe, until its end was read (see `ended`), the stream closed or
    /// handed over.
    fd: Option<OwnedFd>,
    /// Not closed by its owner nor handed over: reads are answered (from
    /// what was buffered, then the end) also once the pipe itself is gone.
    open: bool,
    eof: bool,
    error: Option<String>,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed.
    pos: usize,
    /// The pipe was given a bulk-sized buffer (tried once).
    grown: bool,
    mode: Mode,
    /// Bytes dropped past the limit and not reported yet.
    dropped: u64,
    /// The reader's own bytes (taken for a line or whole read and not
    /// returned yet): older than anything in `buffer`.
    acc: Vec<u8>,
    /// Bytes of `acc` already returned.
    acc_pos: usize,
    /// The program has read it (or tried to): it can no longer be handed
    /// to another process without taking something from its reader.
    read_from: bool,
    /// `acc[acc_pos..scan]` holds no newline (not searched twice).
    scan: usize,
    /// Read whole by its owner (`run`), who reads it whenever anything of
    /// the process stirs: never read ahead, so never limited or dropped.
    whole: bool,
}

impl StreamState {
    /// The pipe reached its end: nothing more can come, so its descriptor
    /// closes now rather than with the handle (a loop that reads many
    /// processes to their end must not run out of descriptors while the
    /// collector has not run). What was read stays for the reader.
    fn ended(&mut self) {
        self.eof = true;
        self.fd = None;
    }

    fn pending(&self) -> usize {
        self.acc.len() - self.acc_pos
    }

    fn clear_acc(&mut self) {
        self.acc.clear();
        self.acc_pos = 0;
        self.scan = 0;
        // A whole read of a big output leaves a big buffer: give it back
        // rather than keep it for the stream's life.
        if self.acc.capacity() > ACC_KEEP {
            self.acc = Vec::new();
        }
    }

    fn buffered(&self) -> usize {
        self.buffer.len() - self.pos
    }

    /// Where the next complete line in `acc` ends (just past its newline),
    /// searching from `scan`; remembers how far it searched.
    fn find_line_end(&mut self) -> Option<usize> {
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
    fn take_line<T>(&mut self, end: usize, keep: bool, f: impl FnOnce(&[u8]) -> T) -> T {
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
    streams: [RefCell<Option<StreamState>>; 2],
    limit: usize,
    used: Cell<usize>,
    /// Per stream: its token and the event loop's queue of tokens to
    /// report. A fill made outside the loop's poll (read-ahead turned on)
    /// consumes the pipe's edge: whoever waits on the stream must still
    /// hear of what it took in.
    wakers: RefCell<[Option<(Token, Wakeups)>; 2]>,
    /// See `mark_terminal`.
    terminal: Cell<bool>,
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

    fn notify(&self, which: usize, f: Filled) {
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

    fn consume(&self, st: &mut StreamState, n: usize) {
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
                    st.error = Some(format!("read failed: {}", sys::describe(&e)));
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
    fn read_into_buffer(&self, st: &mut StreamState, fd: i32) -> std::io::Result<ReadOutcome> {
        if st.pos > 0 && st.pos * 2 >= st.buffer.len() {
            st.buffer.drain(..st.pos);
            st.pos = 0;
        }
        let Ok(chunk) = chunk_to_fill(&mut st.buffer) else {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        };
        let len = st.buffer.len();
        // SAFETY: `chunk` is MAX_CHUNK bytes of the Vec's unused capacity;
        // read() writes at most that many and reports how many.
        let n = unsafe { libc::read(fd, chunk.cast(), MAX_CHUNK) };
        if n > 0 {
            // SAFETY: the first `n` bytes of the spare capacity were written.
            unsafe { st.buffer.set_len(len + n as usize) };
            return Ok(ReadOutcome::Data(n as usize));
        }
        if n == 0 {
            return Ok(ReadOutcome::Eof);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => self.read_into_buffer(st, fd),
            Some(libc::EAGAIN) => Ok(ReadOutcome::WouldBlock),
            Some(libc::EIO) => Ok(ReadOutcome::Eof), // a terminal's other side is gone (see sys::read_nonblocking)
            _ => Err(err),
        }
    }

    /// Past the limit, drop the oldest bytes of `st` (the stream that grew).
    fn enforce_limit(&self, st: &mut StreamState) {
        let used = self.used.get();
        if used <= self.limit {
            return;
        }
        let take = (used - self.limit).min(st.buffered());
        st.dropped += take as u64;
        self.consume(st, take);
    }

    /// One read of stream `which` into `buf`: read-ahead data first, then
    /// the pipe. Reports dropped bytes once, before the data that follows.
    pub fn read(&self, which: usize, buf: &mut [u8]) -> Result<StreamRead, String> {
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
            Err(e) => Err(format!("read failed: {}", sys::describe(&e))),
        }
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
    pub fn hand_over(&self, which: usize) -> Result<OwnedFd, String> {
        if self.terminal.get() {
            // Its descriptor shares one open terminal with the process's
            // stdin: made blocking for the new reader, it would make every
            // write_stdin block the whole program.
            return Err("it reads a terminal (pty = true), which cannot be handed over".into());
        }
        let mut guard = self.streams[which].borrow_mut();
        let st = guard.as_mut().filter(|st| st.open).ok_or("stream is closed")?;
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
            return Err(format!("{why} (only a stream nothing was taken from can be handed over)"));
        }
        let fd = st.fd.take().ok_or("stream is closed")?;
        sys::set_blocking(fd.as_raw_fd()).map_err(|e| sys::describe(&e))?;
        st.open = false;
        st.error = Some(HANDED_OVER.into());
        Ok(fd)
    }

    /// The streams read a terminal (`pty`): they cannot be handed over.
    pub fn mark_terminal(&self) {
        self.terminal.set(true);
    }

    /// Put `data` back in front of what stream `which` returns next.
    pub fn unread(&self, which: usize, data: &[u8]) -> Result<(), String> {
        let mut guard = self.streams[which].borrow_mut();
        let st = match guard.as_mut() {
            Some(st) if st.open => st,
            _ => return Err("stream is closed".into()),
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

    /// Move what the read-ahead took in behind the reader's own bytes.
    fn absorb_buffered(&self, st: &mut StreamState) -> Result<(), String> {
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
    fn pull<T>(&self, st: &mut StreamState, which: usize, deferred: &mut bool) -> Result<Option<Got<T>>, String> {
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
            None => return Err("stream is closed".into()),
        };
        if st.acc_pos > 0 && st.acc_pos * 2 >= st.acc.len() {
            st.acc.drain(..st.acc_pos);
            st.scan -= st.acc_pos;
            st.acc_pos = 0;
        }
        // A reader's buffer that already holds a chunk's worth is bulk: it
        // grows (by doubling) and the pipe is read straight into it, a chunk
        // at a time. (Bigger reads, up to what a grown pipe holds, were
        // slower: the kernel copies more while holding the pipe, and the
        // writer waits.) Otherwise the read goes through
        // the scratch buffer and only the bytes that came are kept: a short
        // output never costs a fresh MAX_CHUNK allocation (which, freed and
        // trimmed each time, would be faulted in again for every process).
        let r = if st.acc.len() >= MAX_CHUNK || st.acc.capacity() - st.acc.len() >= MAX_CHUNK {
            let Ok(chunk) = chunk_to_fill(&mut st.acc) else {
                return Err(out_of_memory(st.pending()));
            };
            let len = st.acc.len();
            // SAFETY: `chunk` is MAX_CHUNK bytes of the Vec's unused
            // capacity; read() writes at most that many and reports how
            // many, and only those are added to the length below.
            let buf = unsafe { std::slice::from_raw_parts_mut(chunk, MAX_CHUNK) };
            sys::read_nonblocking(fd, buf).inspect(|r| {
                if let ReadOutcome::Data(n) = r {
                    // SAFETY: the first `n` bytes of the spare capacity were written.
                    unsafe { st.acc.set_len(len + n) };
                }
            })
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
                let _ = which;
                Ok(Some(Got::WouldBlock))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => Err(out_of_memory(st.pending())),
            Err(e) => {
                st.error = Some(format!("read failed: {}", sys::describe(&e)));
                Ok(None)
            }
        }
    }

    /// Run a line, block or whole read of stream `which` on its state; if
    /// the read found the pipe empty (the reader is about to block), let the
    /// other stream be taken in, once the state is no longer borrowed.
    fn with_reader<R>(
        &self,
        which: usize,
        read: impl FnOnce(&mut StreamState, &mut bool) -> Result<R, String>,
    ) -> Result<R, String> {
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
    pub fn read_line<T>(&self, which: usize, keep: bool, f: impl FnOnce(&[u8]) -> T) -> Result<Got<T>, String> {
        self.with_reader(which, |st, deferred| {
            loop {
                if let Some(end) = st.find_line_end() {
                    return Ok(Got::Data(st.take_line(end, keep, f)));
                }
                match self.pull::<T>(st, which, deferred)? {
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
    pub fn read_lines_block<T>(&self, which: usize, f: impl FnOnce(&[u8]) -> T) -> Result<(Got<T>, bool), String> {
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
                match self.pull::<T>(st, which, deferred)? {
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

    /// Stream `which` is read to its end by `read_whole` (see `whole`).
    pub fn keep_whole(&self, which: usize) {
        if let Some(st) = self.streams[which].borrow_mut().as_mut() {
            st.whole = true;
        }
    }

    /// Everything up to the end of stream `which`, moved out (not copied)
    /// once the end is reached; `WouldBlock` until then.
    pub fn read_whole(&self, which: usize) -> Result<Got<Vec<u8>>, String> {
        self.with_reader(which, |st, deferred| loop {
            match self.pull::<Vec<u8>>(st, which, deferred)? {
                None => continue,
                Some(Got::Eof) => return Ok(Got::Data(take_acc(st))),
                Some(other) => return Ok(other),
            }
        })
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

/// Why a reader's buffer could not grow by the bytes it must hold.
fn out_of_memory(bytes: usize) -> String {
    format!("cannot hold {bytes} bytes of output in memory: out of memory")
}

/// The reader's bytes not returned yet, moved out of `st`.
fn take_acc(st: &mut StreamState) -> Vec<u8> {
    let mut v = std::mem::take(&mut st.acc);
    v.drain(..st.acc_pos);
    st.clear_acc();
    v
}

/// Why a stream without a pipe cannot be read: closed, or handed over.
fn gone(st: Option<&StreamState>) -> String {
    match st.and_then(|s| s.error.as_deref()) {
        Some(HANDED_OVER) => HANDED_OVER.into(),
        _ => "stream is closed".into(),
    }
}

/// At most this many bytes of lines are handed to Lua at once: the strings
/// of one batch stay in the CPU's caches until the program takes them (a
/// whole 64 KiB of short lines at once made the interpreter's string table
/// miss the cache, 0.65x `io.popen():lines()` against about 1.0x).
const LINES_BATCH: usize = 8 * 1024;

/// The capacity of a reader's buffer kept after a read (lines and chunks
/// reuse it); anything bigger is freed.
const ACC_KEEP: usize = 4 * MAX_CHUNK;

/// What reading a stream says once it was given to another process.
pub const HANDED_OVER: &str = "handed to another process";

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

    pub fn read(&mut self, buf: &mut [u8]) -> Result<StreamRead, String> {
        self.outputs.read(self.which, buf)
    }

    pub fn read_line<T>(&mut self, keep: bool, f: impl FnOnce(&[u8]) -> T) -> Result<Got<T>, String> {
        self.outputs.read_line(self.which, keep, f)
    }

    pub fn read_lines_block<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Result<(Got<T>, bool), String> {
        self.outputs.read_lines_block(self.which, f)
    }

    /// A reader of the lines this stream has buffered (see
    /// `Outputs::buffered_line`), for a fast path held apart from the handle.
    #[cfg_attr(any(feature = "luajit", feature = "lua51"), allow(dead_code))] // only the Lua 5.3/5.4 bindings read lines in C
    pub fn buffered_lines(&self) -> BufferedLines {
        BufferedLines { outputs: self.outputs.clone(), which: self.which }
    }

    pub fn read_whole(&mut self) -> Result<Got<Vec<u8>>, String> {
        self.outputs.read_whole(self.which)
    }

    pub fn unread(&mut self, data: &[u8]) -> Result<(), String> {
        self.outputs.unread(self.which, data)
    }

    /// Give the pipe to another child (see `Outputs::hand_over`); the event
    /// loop stops watching it.
    pub fn hand_over(&mut self) -> Result<OwnedFd, String> {
        let fd = self.outputs.hand_over(self.which)?;
        self.driver.borrow_mut().remove(self.token);
        Ok(fd)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether every page under `p[..len]` is resident (mincore).
    fn resident(p: *const u8, len: usize) -> bool {
        let page = 4096;
        let start = p as usize / page * page;
        let pages = (p as usize + len - start).div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: a page-aligned range of this process's memory and a
        // vector of one byte per page.
        assert_eq!(unsafe { libc::mincore(start as *mut libc::c_void, pages * page, vec.as_mut_ptr()) }, 0);
        vec.iter().all(|v| v & 1 == 1)
    }

    #[test]
    fn a_big_buffer_is_faulted_in_before_the_pipe_fills_it() {
        // A fresh mapping, half of it written: the other half is not resident.
        let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
        buf.resize(4 << 20, 1);
        let next = buf.spare_capacity_mut().as_ptr().cast::<u8>();
        assert!(!resident(next, MAX_CHUNK), "a fresh mapping is not resident yet");
        let chunk = chunk_to_fill(&mut buf).unwrap();
        assert_eq!(chunk, next.cast_mut());
        assert!(resident(chunk, MAX_CHUNK));
    }

    fn pipe_outputs(limit: usize) -> (SharedOutputs, OwnedFd) {
        let (r, w) = sys::pipe().unwrap();
        sys::set_nonblocking(r.as_raw_fd()).unwrap();
        sys::set_nonblocking(w.as_raw_fd()).unwrap();
        (Outputs::new([Some(r), None], limit), w)
    }

    #[test]
    fn a_buffered_line_is_taken_without_reading_the_pipe() {
        let (outs, w) = pipe_outputs(1 << 20);
        write_all_blocking(&w, b"one\ntwo\nthr");
        // Nothing was read from the pipe yet: no line is buffered, and
        // asking does not read it.
        assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
        assert!(outs.buffered_line(0, false, |l| l.to_vec()).is_none());
        // A line read pulls the pipe; the next line is then buffered.
        assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Data(l)) if l == b"one"));
        assert_eq!(outs.buffered_line(0, true, |l| l.to_vec()).as_deref(), Some(&b"two\n"[..]));
        // Half a line is not a line: it stays for read_line, which reads on.
        assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
        write_all_blocking(&w, b"ee\nfour\n");
        drop(w);
        assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Data(l)) if l == b"three"));
        assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()).as_deref(), Some(&b"four"[..]));
        // The end is reported by read_line alone.
        assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
        assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Eof)));
    }

    #[test]
    fn a_closed_stream_has_no_buffered_lines() {
        let (outs, w) = pipe_outputs(1 << 20);
        write_all_blocking(&w, b"a\nb\n");
        assert!(matches!(outs.read_line(0, false, |l| l.to_vec()), Ok(Got::Data(l)) if l == b"a"));
        outs.close(0);
        assert_eq!(outs.buffered_line(0, false, |l| l.to_vec()), None);
    }

    #[test]
    fn lines_come_in_batches_that_stay_in_cache() {
        let (outs, w) = pipe_outputs(1 << 20);
        let text: Vec<u8> = (0..20000).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        let long = vec![b'y'; 3 * LINES_BATCH];
        let writer = std::thread::spawn(move || {
            write_all_blocking(&w, &text);
            write_all_blocking(&w, &long);
            write_all_blocking(&w, b"\nlast");
        });
        let mut lines = Vec::new();
        let mut last = None;
        loop {
            match outs.read_lines_block(0, |b| b.to_vec()).unwrap() {
                (Got::Data(b), true) => last = Some(b),
                (Got::Data(b), false) => {
                    // A batch is at most LINES_BATCH bytes, unless it is one long line.
                    assert!(b.len() <= LINES_BATCH || !b[..b.len() - 1].contains(&b'\n'), "{}", b.len());
                    assert_eq!(b.last(), Some(&b'\n'));
                    lines.extend(b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).map(|l| l.to_vec()));
                }
                (Got::WouldBlock, _) => std::thread::sleep(std::time::Duration::from_millis(1)),
                (Got::Eof, _) => break,
                (Got::Dropped(_), _) => panic!("dropped"),
            }
        }
        writer.join().unwrap();
        assert_eq!(lines.len(), 20001);
        assert_eq!(lines[19999], b"19999");
        assert_eq!(lines[20000].len(), 3 * LINES_BATCH);
        assert_eq!(last.as_deref(), Some(&b"last"[..]));
    }

    #[test]
    fn a_stream_read_whole_is_never_read_ahead_and_comes_out_moved() {
        let (outs, w) = pipe_outputs(10);
        outs.keep_whole(0);
        outs.read_ahead(0);
        write_all(&w, &[b'a'; 5000]);
        outs.fill(0);
        assert_eq!(outs.buffered(), 0, "not read ahead, so nothing dropped");
        assert!(matches!(outs.read_whole(0).unwrap(), Got::WouldBlock));
        write_all(&w, b"end");
        drop(w);
        match outs.read_whole(0).unwrap() {
            Got::Data(v) => assert_eq!(v.len(), 5003),
            _ => panic!("expected the whole output"),
        }
        assert!(outs.take_partial(0).is_empty(), "moved out, nothing kept");
    }

    #[test]
    fn a_whole_read_gives_its_big_buffer_back() {
        let (outs, w) = pipe_outputs(1 << 20);
        let writer = std::thread::spawn(move || {
            let block = vec![b'x'; 16 * MAX_CHUNK];
            write_all_blocking(&w, &block);
        });
        let total = loop {
            match outs.read_whole(0).unwrap() {
                Got::Data(all) => break all.len(),
                Got::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
                _ => panic!("unexpected"),
            }
        };
        writer.join().unwrap();
        assert_eq!(total, 16 * MAX_CHUNK);
        let cap = outs.streams[0].borrow().as_ref().unwrap().acc.capacity();
        assert!(cap <= ACC_KEEP, "kept {cap} bytes");
    }

    fn write_all_blocking(fd: &OwnedFd, data: &[u8]) {
        let mut off = 0;
        while off < data.len() {
            match sys::write_nosigpipe(fd.as_raw_fd(), &data[off..]).unwrap() {
                Some(n) => off += n,
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }

    fn write_all(fd: &OwnedFd, data: &[u8]) {
        let mut off = 0;
        while off < data.len() {
            if let Some(n) = sys::write_nosigpipe(fd.as_raw_fd(), &data[off..]).unwrap() {
                off += n;
            } else {
                break;
            }
        }
    }

    #[test]
    fn read_ahead_keeps_output_within_the_limit_and_reports_the_drop() {
        let (outs, w) = pipe_outputs(1000);
        outs.read_ahead(0);
        write_all(&w, &[b'a'; 800]);
        outs.fill(0);
        write_all(&w, &[b'b'; 800]);
        outs.fill(0);
        assert_eq!(outs.buffered(), 1000);
        let mut buf = vec![0; MAX_CHUNK];
        assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::Dropped(600))));
        match outs.read(0, &mut buf) {
            Ok(StreamRead::Data(n)) => {
                assert_eq!(n, 1000);
                assert_eq!(&buf[..200], &[b'a'; 200][..]);
                assert_eq!(&buf[200..1000], &[b'b'; 800][..]);
            }
            _ => panic!("expected data"),
        }
        assert_eq!(outs.buffered(), 0);
        drop(w);
        assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::Eof)));
    }

    #[test]
    fn direct_streams_are_not_taken_in_and_discarded_ones_are_thrown_away() {
        let (outs, w) = pipe_outputs(1 << 20);
        write_all(&w, b"hello");
        assert_eq!(outs.fill(0), Filled::default());
        assert_eq!(outs.buffered(), 0);
        outs.discard(0);
        drop(w);
        let f = outs.fill(0);
        assert!(f.finished || outs.buffered() == 0);
    }

    #[test]
    fn a_blocked_read_turns_on_read_ahead_for_the_other_stream() {
        let (r1, w1) = sys::pipe().unwrap();
        let (r2, w2) = sys::pipe().unwrap();
        for fd in [&r1, &r2] {
            sys::set_nonblocking(fd.as_raw_fd()).unwrap();
        }
        let outs = Outputs::new([Some(r1), Some(r2)], 1 << 20);
        write_all(&w2, b"on stderr");
        let mut buf = vec![0; 64];
        assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::WouldBlock)));
        assert_eq!(outs.buffered(), 9, "stderr was taken in while stdout blocked");
        drop((w1, w2));
    }

    #[test]
    fn lines_come_whole_across_reads_and_the_last_one_without_newline() {
        let (outs, w) = pipe_outputs(1 << 20);
        write_all(&w, b"one\ntw");
        let mut got = Vec::new();
        match outs.read_lines_block(0, |b| b.to_vec()).unwrap() {
            (Got::Data(b), false) => got.push(b),
            _ => panic!("expected one line"),
        }
        assert!(matches!(outs.read_line(0, false, |l| l.to_vec()).unwrap(), Got::WouldBlock));
        write_all(&w, b"o\nthree\nlast");
        drop(w);
        let mut all = Vec::new();
        loop {
            match outs.read_line(0, true, |l| l.to_vec()).unwrap() {
                Got::Data(l) => all.push(l),
                Got::Eof => break,
                _ => panic!("unexpected"),
            }
        }
        assert_eq!(got, vec![b"one\n".to_vec()]);
        assert_eq!(all, vec![b"two\n".to_vec(), b"three\n".to_vec(), b"last".to_vec()]);
    }

    #[test]
    fn a_whole_read_keeps_what_arrived_until_the_end_and_chunks_see_line_leftovers() {
        let (outs, w) = pipe_outputs(1 << 20);
        write_all(&w, b"a\nbc");
        assert!(matches!(outs.read_line(0, false, |l| l.to_vec()).unwrap(), Got::Data(ref l) if l == b"a"));
        let mut buf = vec![0; 64];
        assert!(matches!(outs.read(0, &mut buf), Ok(StreamRead::Data(2))));
        assert_eq!(&buf[..2], b"bc");
        write_all(&w, b"xyz");
        assert!(matches!(outs.read_whole(0).unwrap(), Got::WouldBlock));
        outs.unread(0, b">").unwrap();
        write_all(&w, b"!");
        drop(w);
        assert!(matches!(outs.read_whole(0).unwrap(), Got::Data(ref b) if b == b">xyz!"));
    }
}
