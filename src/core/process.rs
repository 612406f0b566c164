//! One child process from creation to its end, without any Lua in sight.
//!
//! States: created -> running -> closed. A handle is closed by a completed
//! `wait` (the exit code stays available), by `close`, or by being dropped;
//! in every case the child ends up reaped, by us or by the reaper thread.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc as SyncArc;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::core::error::{Error, What};
use crate::core::os::children::{self, ExitStatus, Owner};
use crate::core::io::driver::{SharedDriver, STDIN_HIGH_WATER};
use crate::core::io::poller::Token;
use crate::core::os::spawn::{self, SpawnRequest, Stdio};
use crate::core::remote::ssh::Readiness;
use crate::core::remote::Remote;
use crate::core::io::stdin::StdinPipe;
use crate::core::io::stream::{Outputs, SharedOutputs, Stream, DEFAULT_BUFFER_LIMIT};
use crate::core::os::sys::{self, SignalsHeld};

/// How long `write_stdin_alone` waits for a child that takes nothing of
/// its input before it queues the rest and returns.
const STALL_MS: i32 = 20;

pub(crate) mod collect;
pub(crate) mod settle;

/// The executor's cap on live processes, shared by every process it starts.
#[derive(Clone)]
pub struct Limit {
    pub executor: String,
    pub live: Arc<AtomicUsize>,
    pub max: Option<usize>,
    /// `queue = true`: a start beyond `max` waits for a slot (in Lua,
    /// which parks the caller) instead of failing.
    pub queue: bool,
}

impl Limit {
    /// Whether one more process may start now. Orphans that exited are
    /// reaped first where no reaper thread runs, so their slots count free.
    pub fn has_room(&self) -> bool {
        let Some(max) = self.max else { return true };
        if self.live.load(Ordering::SeqCst) < max {
            return true;
        }
        children::sweep_orphans();
        self.live.load(Ordering::SeqCst) < max
    }
}

/// The terminal's end-of-file character (VEOF, ^D), which `close_stdin`
/// types into a pseudo-terminal.
const EOF_CHAR: u8 = 0x04;

/// How far `wait()` has begun: the order matters (a wait without a
/// deadline goes further than one with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum WaitBegun {
    No,
    Timed,
    Untimed,
}

/// What one step of `wait()` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitStep {
    Done(i32),
    /// Still running: park on this token and step again.
    Pending(Token),
    Failed(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Closed,
}

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout = 0,
    Stderr = 1,
}

impl Output {
    pub fn name(self) -> &'static str {
        match self {
            Output::Stdout => "stdout",
            Output::Stderr => "stderr",
        }
    }
}

pub struct Process {
    req: SpawnRequest,
    driver: SharedDriver,
    owner: Owner,
    limit: Limit,
    state: State,
    pid: libc::pid_t,
    /// Shared with the child table, which signals through it.
    pidfd: Option<SyncArc<OwnedFd>>,
    exit_token: Option<Token>,
    stdin: Option<(Rc<RefCell<StdinPipe>>, Token)>,
    /// The output pipes (see stream.rs), their tokens, and which of them
    /// were handed out as streams.
    outputs: Option<SharedOutputs>,
    out_tokens: [Option<Token>; 2],
    taken: [bool; 2],
    /// Outputs read whole by `collect_step` (`run`), and what each gave.
    collecting: [bool; 2],
    collected: [Option<Vec<u8>>; 2],
    /// `run`'s max_output: bytes kept of each output read whole; and
    /// whether either had more (collect.rs).
    max_output: Option<usize>,
    truncated: bool,
    /// Read-ahead limit for this process's output, in bytes.
    buffer_limit: usize,
    /// How far `wait()` has begun (see `begin_wait`).
    wait_begun: WaitBegun,
    /// How the child ended, once it was reaped.
    status: Option<ExitStatus>,
    /// The master of the child's pseudo-terminal (`pty`), for its window size.
    pty: Option<OwnedFd>,
    /// The same, filled in by whoever reaps the child after `close()`.
    outcome: children::Outcome,
    /// For a remote process: its remote half. The local child is `ssh`,
    /// or a container engine's client.
    remote: Option<Remote>,
    /// Why the outcome is unknown (a remote connection failed).
    failure: Option<Error>,
}

impl Process {
    pub fn new(
        req: SpawnRequest,
        remote: Option<Remote>,
        driver: SharedDriver,
        owner: Owner,
        limit: Limit,
    ) -> Process {
        Process {
            remote,
            failure: None,
            req,
            driver,
            owner,
            limit,
            state: State::Created,
            pid: 0,
            pidfd: None,
            exit_token: None,
            stdin: None,
            outputs: None,
            out_tokens: [None, None],
            taken: [false, false],
            collecting: [false, false],
            collected: [None, None],
            max_output: None,
            truncated: false,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            wait_begun: WaitBegun::No,
            status: None,
            pty: None,
            outcome: children::Outcome::new(),
        }
    }

    /// Read-ahead limit (`buffer_limit`), set before `start`.
    pub fn set_buffer_limit(&mut self, bytes: usize) {
        self.buffer_limit = bytes;
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn pid(&self) -> Option<libc::pid_t> {
        // pid 0: never started (closed before start).
        (self.pid != 0).then_some(self.pid)
    }

    /// The exit code, once the child was reaped.
    pub fn code(&self) -> Option<i32> {
        self.status.map(ExitStatus::code)
    }

    /// Where the process is: (state, detail). "created", "running", then
    /// "exited" with the code or "signaled" with the signal once the child
    /// was reaped (a running child is reaped here if it has exited, as
    /// Python's `poll()` does), also after `close()` once the child that
    /// was told to stop has ended; until then "closed". "unknown" when the
    /// outcome cannot be known (a remote connection failed, or the host
    /// reaped the child itself).
    pub fn status(&mut self) -> (&'static str, Option<i32>) {
        let ended = match self.state {
            State::Created => return ("created", None),
            State::Running => match self.try_wait() {
                Ok(Some(_)) => self.status,
                Ok(None) => return ("running", None),
                Err(_) => return ("unknown", None),
            },
            State::Closed => self.status.or_else(|| self.outcome.get()),
        };
        match ended {
            Some(s) => match s.signal() {
                Some(n) => ("signaled", Some(n)),
                None => ("exited", Some(s.code())),
            },
            None if self.failure.is_some() => ("unknown", None),
            None => ("closed", None),
        }
    }

    /// The executor whose slots this process queues for (`queue = true`).
    pub fn queue_id(&self) -> Option<String> {
        (self.limit.queue && self.limit.max.is_some()).then(|| self.limit.executor.clone())
    }

    pub fn has_room(&self) -> bool {
        self.limit.has_room()
    }

    pub fn command(&self) -> String {
        match &self.remote {
            Some(r) => r.describe(),
            None => self.req.command.describe(),
        }
    }

    /// Bring up what a remote process needs before `start` (the shared
    /// connection). Always ready for a local process.
    pub fn connect(&self) -> Result<Readiness, String> {
        match (&self.remote, self.state) {
            (Some(r), State::Created) => r.connect(self.owner),
            _ => Ok(Readiness::Ready),
        }
    }

    pub fn exit_token(&self) -> Option<Token> {
        self.exit_token
    }

    pub fn stdin_token(&self) -> Option<Token> {
        self.stdin.as_ref().map(|(_, t)| *t)
    }

    pub fn start(&mut self) -> Result<(), Error> {
        match self.state {
            State::Created => {}
            State::Running => return Err(Error::Other("process already started".into())),
            State::Closed => return Err(Error::Closed(What::Process)),
        }
        if !self.limit.has_room() {
            return Err(Error::Other(format!(
                "executor '{}' reached its max_processes limit ({} live processes)",
                self.limit.executor,
                self.limit.max.unwrap_or(0)
            )));
        }
        if let Some(r) = &mut self.remote {
            if let Err(e) = r.complete(&mut self.req) {
                self.req.redirect = Default::default();
                self.req.fds = Vec::new();
                return Err(Error::Other(e));
            }
        }
        let spawned = spawn::spawn(&self.req);
        // The child has its own copies now: ours close at once, so that a
        // pipeline's producer sees its reader go (SIGPIPE) and a Lua file's
        // pipe ends when its other users close it. One owner per descriptor
        // (the `fds` too).
        self.req.redirect = Default::default();
        self.req.fds = Vec::new();
        let spawned = spawned?;
        // From here on the child exists: register it before anything can fail,
        // so that every path below still ends with it reaped. Its pidfd is
        // taken first: signals go through it. ESRCH means the child is gone
        // already (a host that ignores SIGCHLD had the kernel reap it).
        let (pidfd, vanished) = match sys::pidfd_open(spawned.pid) {
            Ok(fd) => (fd.map(SyncArc::new), false),
            Err(_) => (None, true),
        };
        children::register_child(children::Child {
            pid: spawned.pid,
            owner: self.owner,
            process_group: self.req.process_group,
            live: Some(self.limit.live.clone()),
            pidfd: pidfd.clone(),
            vanished,
            outcome: Some(self.outcome.clone()),
            detached: self.req.detach,
        });
        if let Some(r) = &self.remote {
            children::set_remote_stop(spawned.pid, r.stop_argv(false), r.stop_argv(true));
        }
        self.pid = spawned.pid;
        self.pidfd = pidfd;
        self.state = State::Running;
        if let Err(e) = self.watch(spawned) {
            self.close(true);
            return Err(e);
        }
        Ok(())
    }

    fn watch(&mut self, mut spawned: spawn::Spawned) -> Result<(), Error> {
        self.pty = spawned.pty.take();
        let fail = |e: std::io::Error| Error::os(format_args!("cannot watch '{}'", self.req.command.describe()), &e);
        let mut d = self.driver.borrow_mut();
        self.exit_token = Some(d.add_exit(self.pid, self.pidfd.as_ref().map(|f| f.as_raw_fd())).map_err(fail)?);
        if let Some(fd) = spawned.stdin {
            let pipe = Rc::new(RefCell::new(StdinPipe::new(fd, self.req.stdin == Stdio::Socket)));
            let t = d.add_writer(pipe.clone()).map_err(fail)?;
            self.stdin = Some((pipe, t));
        }
        let outputs = Outputs::new([spawned.stdout, spawned.stderr], self.buffer_limit);
        if self.pty.is_some() {
            outputs.mark_terminal();
        }
        self.outputs = Some(outputs.clone());
        for which in 0..2 {
            if outputs.has(which) {
                self.out_tokens[which] = Some(d.add_output(outputs.clone(), which).map_err(fail)?);
            }
        }
        Ok(())
    }

    /// Reap the child if it has exited. The handle stays open until `finish`.
    pub fn try_wait(&mut self) -> Result<Option<i32>, Error> {
        if let Some(s) = self.status {
            return Ok(Some(s.code()));
        }
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        match self.state {
            State::Created => Err(Error::NotStarted),
            State::Closed => Err(Error::Closed(What::Process)),
            State::Running => {
                // Reaped already by the event loop when it saw the exit (the
                // status waits in the outcome), or reaped now if it exited.
                let reaped = match self.outcome.get() {
                    Some(s) => Some(s),
                    None => children::try_reap(self.pid)
                        .map_err(|e| Error::os(format_args!("waiting for '{}' failed", self.command()), &e))?,
                };
                let Some(s) = reaped else { return Ok(None) };
                let s = match &self.remote {
                    Some(r) => r.interpret(s).map_err(Error::Other).inspect_err(|e| self.failure = Some(e.clone()))?,
                    None => s,
                };
                self.status = Some(s);
                Ok(Some(s.code()))
            }
        }
    }

    /// One step of `wait()`, the whole state machine in one call: the exit
    /// code once the child is reaped (the handle is then finished), the
    /// token to park on while it runs, or why it cannot be waited for. With
    /// a result come the tokens other waiters may park on, to be woken.
    /// `timed`: the wait has a deadline, after which the process may still
    /// be read (see `begin_wait`).
    pub fn wait_step(&mut self, timed: bool) -> (WaitStep, [Option<Token>; 2]) {
        match self.state {
            State::Created => return (WaitStep::Failed(Error::NotStarted), [None, None]),
            State::Closed => {
                return match self.status {
                    Some(s) => (WaitStep::Done(s.code()), [None, None]),
                    None => (WaitStep::Failed(Error::Closed(What::Process)), [None, None]),
                }
            }
            State::Running => {}
        }
        let now = if timed { WaitBegun::Timed } else { WaitBegun::Untimed };
        if self.wait_begun < now {
            self.wait_begun = now;
            self.begin_wait(timed);
        }
        let wake = [self.exit_token, self.stdin_token()];
        match self.try_wait() {
            Ok(Some(c)) => {
                self.finish();
                (WaitStep::Done(c), wake)
            }
            Ok(None) => match self.exit_token {
                Some(t) => (WaitStep::Pending(t), [None, None]),
                None => (WaitStep::Failed(Error::Closed(What::Process)), [None, None]),
            },
            Err(e) => (WaitStep::Failed(e), wake),
        }
    }

    /// `wait()` has begun: no output may hold the child up any more. Streams
    /// handed out are read ahead, so that whoever holds them can still read
    /// everything (up to the buffer limit). Output nobody obtained is read
    /// ahead too while the wait has a deadline (a stream taken after it
    /// passed finds every byte), and discarded by a wait without one, which
    /// ends only with the handle: then nobody can ever read it.
    pub fn begin_wait(&mut self, timed: bool) {
        let Some(outs) = self.outputs.clone() else { return };
        for which in 0..2 {
            if self.out_tokens[which].is_none() {
                continue;
            }
            // A fill here that brings news (or stops early) queues the
            // stream's token for the next poll itself (Outputs::notify).
            if self.taken[which] || timed {
                outs.read_ahead(which);
            } else {
                outs.discard(which);
            }
        }
    }

    /// The caller is about to wait for room in the stdin queue: the child
    /// may be blocked writing output nobody reads, so every output is read
    /// ahead meanwhile (up to the buffer limit), as during other waits.
    fn read_ahead_outputs(&self) {
        if let Some(outs) = &self.outputs {
            for which in 0..2 {
                if self.out_tokens[which].is_some() {
                    outs.read_ahead(which);
                }
            }
        }
    }

    /// `wait()` has returned: close the handle, keep the exit code. Streams
    /// already handed out stay readable to their end.
    pub fn finish(&mut self) {
        if self.state == State::Running && self.status.is_none() {
            // Never leave a running child unowned: that would be a zombie
            // and a max_processes slot lost for good.
            return self.close(false);
        }
        self.release_resources();
        self.state = State::Closed;
    }

    /// The command's `timeout` passed: all that is left of it (the child,
    /// its group, what is left of the group after the child exited) is
    /// ended as `close()` ends it (children::abandon: the signal and
    /// SIGCONT now, SIGKILL after the grace from the reaper, whatever Lua
    /// does meanwhile), but the handle stays open: `wait()` still returns
    /// the code. True if anything was left to get it.
    pub fn time_out(&mut self) -> bool {
        let running = self.state == State::Running && matches!(self.try_wait(), Ok(None));
        if self.pid == 0 || !(running || self.group_alive()) {
            return false;
        }
        match &self.remote {
            // The remote side is ended by its own gentle stop (the same
            // grace, in the remote shell); the local ssh then relays its
            // exit code, which killing the ssh would lose.
            Some(r) => {
                let _ = children::spawn_detached(r.stop_argv(false), self.owner);
            }
            None => children::abandon(self.pid, libc::SIGTERM),
        }
        true
    }

    /// Whether anything of the command's process group is left after its
    /// leader exited.
    pub fn group_alive(&mut self) -> bool {
        self.signal_rest(0)
    }

    /// Signal what is left of the command after its leader exited (a
    /// process group): true if anything was there to get it.
    fn signal_rest(&mut self, sig: i32) -> bool {
        if self.pid == 0 || !self.req.process_group || self.remote.is_some() {
            return false;
        }
        children::signal_group(self.pid, sig)
    }

    /// Send signal `sig` to the running child.
    pub fn signal(&mut self, sig: i32) -> Result<(), Error> {
        if !sys::SIGNAL_NUMBERS.contains(&sig) {
            return Err(Error::Invalid(format!("invalid signal number {sig}")));
        }
        self.running()?;
        // A child that exited but was not waited for yet is a zombie, which
        // kill() would accept: reap it first so that it is reported as
        // finished (its code stays available to wait()).
        if self.try_wait()?.is_some() {
            // Its group may outlive it: the signal reaches what is left.
            if sig != 0 && self.signal_rest(sig) {
                return Ok(());
            }
            return Err(Error::Finished);
        }
        if let Some(r) = &self.remote {
            // Delivered by a short ssh of its own; returns once it is sent.
            return children::spawn_detached(r.signal_argv(sig), self.owner)
                .map(|_| ())
                .map_err(|e| Error::Other(format!("signal {sig} to the remote process failed: {e}")));
        }
        match children::signal(self.pid, sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(Error::Finished),
            Err(e) => Err(Error::os(format_args!("signal {sig} to pid {} failed", self.pid), &e)),
        }
    }

    /// End the handle: a running child gets SIGTERM (SIGKILL when `force`)
    /// and is reaped in the background. Idempotent.
    pub fn close(&mut self, force: bool) {
        self.close_with(if force { libc::SIGKILL } else { libc::SIGTERM });
    }

    /// `close` with the signal the caller chose (SIGKILL follows after the
    /// grace period if the child is still there).
    pub fn close_with(&mut self, sig: i32) {
        // A group may outlive its leader: closing the handle ends it too.
        if self.pid != 0 && ((self.state == State::Running && self.status.is_none()) || self.req.process_group) {
            children::abandon(self.pid, sig);
        }
        self.release_resources();
        self.state = State::Closed;
    }

    fn release_resources(&mut self) {
        // (A process closed before it started still held its files.)
        self.req.redirect = Default::default();
        let mut d = self.driver.borrow_mut();
        if let Some(t) = self.exit_token.take() {
            d.remove(t);
        }
        self.pidfd = None;
        self.pty = None;
        if let Some((pipe, t)) = self.stdin.take() {
            d.remove(t);
            pipe.borrow_mut().discard();
        }
        // Outputs nobody obtained end with the handle: nobody can read them.
        // So do those `run` reads whole (it took what it wanted of them).
        if let Some(outs) = self.outputs.take() {
            for which in 0..2 {
                if let Some(t) = self.out_tokens[which].take() {
                    if !self.taken[which] || self.collecting[which] {
                        d.remove(t);
                        outs.close(which);
                    }
                }
            }
        }
    }

    /// Whether output `which` is one the program can read (a pipe, a
    /// socket or the terminal), whatever the state: a stream may be asked
    /// for before `start`, and is refused at once if it can never exist.
    pub fn check_stream(&self, which: Output) -> Result<(), Error> {
        let mode = if which == Output::Stdout { self.req.stdout } else { self.req.stderr };
        if mode == Stdio::Pty && which == Output::Stderr {
            return Err(Error::Unsupported("stderr goes to the terminal with pty: read it from stdout_stream()".into()));
        }
        if mode != Stdio::Pipe && mode != Stdio::Socket && mode != Stdio::Pty {
            return Err(Error::Unsupported(format!("{} is not a pipe (it was set to \"{}\")", which.name(), mode.name())));
        }
        Ok(())
    }

    /// Hand out an output stream (once; the binding caches the object).
    pub fn take_stream(&mut self, which: Output) -> Result<Stream, Error> {
        self.running()?;
        self.check_stream(which)?;
        let i = which as usize;
        match (&self.outputs, self.out_tokens[i]) {
            (Some(outs), Some(token)) if !self.taken[i] => {
                self.taken[i] = true;
                Ok(Stream::new(outs.clone(), i, token, self.driver.clone()))
            }
            _ => Err(Error::Other(format!("{} stream was already taken", which.name()))),
        }
    }

    /// Queue `data` for the child's stdin. Returns the bytes still queued:
    /// at or above STDIN_HIGH_WATER the caller should wait on the stdin token.
    pub fn write_stdin(&mut self, data: &[u8]) -> Result<usize, Error> {
        // push() writes until the pipe is full; the rest is written by the
        // event loop when the pipe's writable edge comes.
        let (pipe, token) = self.stdin_pipe()?;
        let queued = {
            let mut p = pipe.borrow_mut();
            p.push(data)?;
            p.queued()
        };
        if queued > 0 {
            self.watch_stdin(token)?;
        }
        if Self::stdin_must_wait(queued) {
            self.read_ahead_outputs();
        }
        Ok(queued)
    }

    /// `write_stdin` for a caller that waits alone (no task, timer or other
    /// waiter could run meanwhile; see `collect_alone`): the bytes go from
    /// `data` (the caller's own string) straight into the pipe, and while
    /// the pipe is full the event loop's turns are taken here, with the
    /// host's signals held back between waits and let in while waiting. No
    /// copy into the queue, no return to Lua for each pipe's worth.
    ///
    /// What the caller sees is what `write_stdin` gives it: this only
    /// delivers now what the loop would deliver while the caller waits on
    /// something next. So it stops, queues the rest and returns as
    /// `write_stdin` does as soon as anything else calls for the caller:
    /// the child wrote output or exited, a signal arrived, `host_waits()`
    /// (the interpreter's hook), or a turn brought nothing (an interrupted
    /// wait); and, unless the rest must wait anyway (STDIN_HIGH_WATER), when
    /// the child took nothing for STALL_MS (a child that does not read yet
    /// is no reason to hold the caller, whose write is accepted at once).
    /// An error after some bytes went in is left for the next call, as a
    /// failed flush of the queue is.
    pub fn write_stdin_alone(&mut self, data: &[u8], host_waits: impl Fn() -> bool) -> Result<usize, Error> {
        let (pipe, token) = self.stdin_pipe()?;
        let mut held: Option<SignalsHeld> = None;
        let mut off = 0;
        let mut ready = Vec::new();
        loop {
            {
                let mut p = pipe.borrow_mut();
                if p.queued() > 0 {
                    p.flush();
                }
                if p.queued() == 0 {
                    match p.write_some(&data[off..], held.as_ref()) {
                        Ok(n) => off += n,
                        Err(e) if off == 0 => return Err(e),
                        Err(_) => return Ok(0),
                    }
                }
                if off == data.len() {
                    return Ok(p.queued());
                }
                if p.error().is_some() {
                    break;
                }
                p.want_room();
            }
            self.watch_stdin(token)?;
            let timeout = if data.len() - off + pipe.borrow().queued() >= STDIN_HIGH_WATER { -1 } else { STALL_MS };
            let held = held.get_or_insert_with(SignalsHeld::new);
            ready.clear();
            let turned = self.driver.borrow_mut().turn(timeout, &mut ready, Some(held));
            let mine = |t: &Token| Some(*t) == self.exit_token || self.out_tokens.contains(&Some(*t));
            if turned.is_err() || !ready.contains(&token) || ready.iter().any(mine) || held.arrived() || host_waits() {
                break;
            }
        }
        drop(held);
        // Queued as write_stdin queues it (an error once bytes went in is
        // the next call's, as above).
        match self.write_stdin(&data[off..]) {
            Err(_) if off > 0 => Ok(0),
            r => r,
        }
    }

    /// The stdin queue waits for room: its pipe joins the event loop's set.
    fn watch_stdin(&self, token: Token) -> Result<(), Error> {
        self.driver
            .borrow_mut()
            .watch_writer(token)
            .map_err(|e| Error::os(format_args!("cannot watch '{}'", self.req.command.describe()), &e))
    }

    /// Bytes of stdin still queued, or the error that ended the pipe.
    pub fn stdin_queued(&self) -> Result<usize, Error> {
        match &self.stdin {
            Some((p, _)) => match p.borrow().error() {
                Some(e) => Err(e.clone()),
                None => Ok(p.borrow().queued()),
            },
            None => Ok(0),
        }
    }

    pub fn stdin_must_wait(queued: usize) -> bool {
        queued >= STDIN_HIGH_WATER
    }

    /// End-of-file on stdin once queued data is delivered. Idempotent.
    pub fn close_stdin(&mut self) -> Result<(), Error> {
        self.running()?;
        if let Some((pipe, token)) = &self.stdin {
            if self.pty.is_some() {
                // A terminal has no end of its input to give: type the
                // end-of-file character, as a user would (it ends a line
                // read by a program in canonical mode).
                let queued = {
                    let mut p = pipe.borrow_mut();
                    p.push(&[EOF_CHAR])?;
                    p.queued()
                };
                if queued > 0 {
                    self.watch_stdin(*token)?;
                }
            } else {
                pipe.borrow_mut().close();
            }
        }
        Ok(())
    }

    /// Change the window size of the process's terminal (`pty`).
    pub fn resize(&mut self, rows: u16, cols: u16) -> Result<(), Error> {
        self.running()?;
        match &self.pty {
            Some(m) => sys::set_window_size(m.as_raw_fd(), rows, cols).map_err(|e| Error::os("cannot resize the terminal", &e)),
            None => Err(Error::Unsupported("the process has no terminal (start it with pty = true)".into())),
        }
    }

    /// Ok while the process runs: else not started, or closed.
    fn running(&self) -> Result<(), Error> {
        match self.state {
            State::Created => Err(Error::NotStarted),
            State::Closed => Err(Error::Closed(What::Process)),
            State::Running => Ok(()),
        }
    }

    fn stdin_pipe(&self) -> Result<(Rc<RefCell<StdinPipe>>, Token), Error> {
        self.running()?;
        match &self.stdin {
            Some((p, t)) => Ok((p.clone(), *t)),
            None => Err(Error::Unsupported(format!("stdin is not a pipe (it was set to \"{}\")", self.req.stdin.name()))),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.close(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::CommandSpec;
    use crate::core::io::driver::Driver;
    use crate::core::io::stream::{Got, StreamRead};

    /// A process for `req`, alone under an executor that allows one.
    pub(super) fn process_of(req: SpawnRequest) -> Process {
        let limit = Limit { executor: "test:x".into(), live: Arc::new(AtomicUsize::new(0)), max: Some(1), queue: false };
        Process::new(req, None, Driver::shared().unwrap(), children::new_owner(), limit)
    }

    pub(super) fn process(cmd: &str) -> Process {
        process_of(SpawnRequest::new(CommandSpec::Shell(cmd.into())))
    }

    /// One turn of the process's own driver, as the Lua loop makes while a
    /// step is pending (up to `ms`).
    pub(super) fn poll(p: &Process, ms: i32) {
        let mut ready = Vec::new();
        p.driver.borrow_mut().poll(ms, &mut ready).unwrap();
    }

    /// Drive `wait_step` with the process's own driver, as the Lua loop does.
    fn wait(p: &mut Process) -> WaitStep {
        for _ in 0..1000 {
            match p.wait_step(false).0 {
                WaitStep::Pending(_) => poll(p, 100),
                other => return other,
            }
        }
        panic!("the child never ended");
    }

    #[test]
    fn wait_step_runs_the_whole_wait_and_keeps_the_code() {
        let mut p = process("exit 3");
        assert_eq!(p.wait_step(false).0, WaitStep::Failed(Error::NotStarted));
        p.start().unwrap();
        assert_eq!(wait(&mut p), WaitStep::Done(3));
        assert_eq!(p.state(), State::Closed);
        assert_eq!(p.wait_step(false).0, WaitStep::Done(3), "asked again: the same code");
    }

    #[test]
    fn max_processes_is_checked_at_start_and_freed_at_reap() {
        let mut a = process("sleep 0.2");
        let limit = a.limit.clone();
        a.start().unwrap();
        let mut b = process("true");
        b.limit = limit.clone();
        let e = b.start().unwrap_err();
        assert!(e.to_string().contains("max_processes limit (1 live processes)"), "{e}");
        assert_eq!(wait(&mut a), WaitStep::Done(0));
        let mut c = process("true");
        c.limit = limit;
        c.start().unwrap();
        assert_eq!(wait(&mut c), WaitStep::Done(0));
    }

    #[test]
    fn a_stream_outlives_the_wait_and_keeps_all_output() {
        let mut p = process("head -c 300000 /dev/zero; echo; echo end");
        p.start().unwrap();
        let mut s = p.take_stream(Output::Stdout).unwrap();
        assert!(p.take_stream(Output::Stdout).is_err(), "handed out once");
        assert_eq!(wait(&mut p), WaitStep::Done(0));
        let mut total = 0;
        let mut buf = vec![0; 65536];
        loop {
            match s.read(&mut buf).unwrap() {
                StreamRead::Data(n) => total += n,
                StreamRead::Eof => break,
                StreamRead::WouldBlock => poll(&p, 100),
                StreamRead::Dropped(n) => panic!("{n} bytes dropped"),
            }
        }
        assert_eq!(total, 300000 + 1 + 4);
        assert!(matches!(s.read_line(false, |l| l.to_vec()).unwrap(), Got::Eof));
    }

    fn patterned(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect()
    }

    #[test]
    fn write_stdin_alone_delivers_every_byte_in_order() {
        let path = std::env::temp_dir().join(format!("lua-exec-alone-{}", std::process::id()));
        let mut p = process(&format!("cat > '{}'", path.display()));
        p.start().unwrap();
        let data = patterned(40 << 20);
        for piece in data.chunks(3 << 20) {
            assert_eq!(p.write_stdin_alone(piece, || false), Ok(0), "written whole: nothing queued");
        }
        p.close_stdin().unwrap();
        assert_eq!(wait(&mut p), WaitStep::Done(0));
        let got = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(got == data, "{} bytes came of {}", got.len(), data.len());
    }

    #[test]
    fn write_stdin_alone_queues_for_a_child_that_does_not_read_yet() {
        let mut p = process("sleep 0.5; cat > /dev/null");
        p.start().unwrap();
        let t0 = std::time::Instant::now();
        let queued = p.write_stdin_alone(&patterned(4 << 20), || false).unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_millis(400), "{:?}", t0.elapsed());
        assert!(queued > 0 && queued < 4 << 20, "{queued}");
        p.close_stdin().unwrap();
        assert_eq!(wait(&mut p), WaitStep::Done(0));
    }

    #[test]
    fn write_stdin_alone_stops_when_the_child_writes_output_or_the_host_asks() {
        // cat echoes: its output is the caller's to read, so the rest is queued.
        let mut p = process("cat");
        p.start().unwrap();
        let mut s = p.take_stream(Output::Stdout).unwrap();
        let data = patterned(2 << 20);
        let queued = p.write_stdin_alone(&data, || false).unwrap();
        assert!(queued > 0, "returned once output came");
        p.close_stdin().unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0; 65536];
        loop {
            match s.read(&mut buf).unwrap() {
                StreamRead::Data(n) => got.extend_from_slice(&buf[..n]),
                StreamRead::Eof => break,
                StreamRead::WouldBlock => poll(&p, 100),
                StreamRead::Dropped(n) => panic!("{n} bytes dropped"),
            }
        }
        assert!(got == data);
        assert_eq!(wait(&mut p), WaitStep::Done(0));
        // A host whose hook changed gets control back after one turn.
        let mut q = process("cat > /dev/null");
        q.start().unwrap();
        let asked = std::cell::Cell::new(0);
        let queued = q.write_stdin_alone(&patterned(64 << 20), || {
            asked.set(asked.get() + 1);
            true
        });
        assert_eq!(asked.get(), 1);
        assert!(queued.unwrap() > 0);
        q.close(true);
    }

    #[test]
    fn a_signal_ends_write_stdin_alone_with_the_rest_queued() {
        extern "C" fn noted(_: libc::c_int) {}
        // SAFETY: installs a handler that does nothing for SIGUSR2 (the
        // only other test that uses it installs one that does nothing
        // too); pthread_self/pthread_kill name a live thread.
        let me = unsafe {
            libc::signal(libc::SIGUSR2, noted as *const () as libc::sighandler_t);
            libc::pthread_self() as usize
        };
        // More than STDIN_HIGH_WATER to a child that never reads: only the
        // signal ends the wait.
        let mut p = process("sleep 5");
        p.start().unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(150));
            // SAFETY: `me` is the test's thread, alive until join below.
            unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR2) };
        });
        let t0 = std::time::Instant::now();
        let queued = p.write_stdin_alone(&vec![b'x'; STDIN_HIGH_WATER + (1 << 20)], || false).unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_secs(3), "{:?}", t0.elapsed());
        assert!(Process::stdin_must_wait(queued), "{queued}");
        sender.join().unwrap();
        p.close(true);
    }

    #[test]
    fn finishing_a_running_child_closes_it_instead_of_orphaning_it() {
        let mut p = process("sleep 30");
        p.start().unwrap();
        let pid = p.pid().unwrap();
        p.finish();
        assert_eq!(p.state(), State::Closed);
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "the child was left running");
    }
}
