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
mod input;
mod wait;
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
    /// whether each (stdout, stderr) had more (collect.rs).
    max_output: Option<usize>,
    truncated: [bool; 2],
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
            truncated: [false; 2],
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
    pub(super) fn wait_done(p: &mut Process) -> WaitStep {
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
        assert_eq!(wait_done(&mut p), WaitStep::Done(3));
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
        assert_eq!(wait_done(&mut a), WaitStep::Done(0));
        let mut c = process("true");
        c.limit = limit;
        c.start().unwrap();
        assert_eq!(wait_done(&mut c), WaitStep::Done(0));
    }

    #[test]
    fn a_stream_outlives_the_wait_and_keeps_all_output() {
        let mut p = process("head -c 300000 /dev/zero; echo; echo end");
        p.start().unwrap();
        let mut s = p.take_stream(Output::Stdout).unwrap();
        assert!(p.take_stream(Output::Stdout).is_err(), "handed out once");
        assert_eq!(wait_done(&mut p), WaitStep::Done(0));
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
