//! One child process from creation to its end, without any Lua in sight.
//!
//! States: created -> running -> closed. A handle is closed by a completed
//! `wait` (the exit code stays available), by `close`, or by being dropped;
//! in every case the child ends up reaped, by us or by the reaper thread.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::children::{self, Owner};
use super::driver::{SharedDriver, STDIN_HIGH_WATER};
use super::poller::Token;
use super::spawn::{self, SpawnRequest, Stdio};
use super::ssh::{Readiness, RemoteProcess};
use super::stdin::StdinPipe;
use super::stream::{Stream, StreamState};
use std::rc::Weak;
use super::sys;

/// The executor's cap on live processes, shared by every process it starts.
#[derive(Clone)]
pub struct Limit {
    pub executor: String,
    pub live: Arc<AtomicUsize>,
    pub max: Option<usize>,
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
    pidfd: Option<OwnedFd>,
    exit_token: Option<Token>,
    stdin: Option<(Rc<RefCell<StdinPipe>>, Token)>,
    /// Output pipes not yet handed out as streams, with their reader tokens.
    outputs: [Option<(OwnedFd, Token)>; 2],
    /// Tokens of unobtained outputs that `wait()` turned into drains.
    drains: Vec<Token>,
    /// Streams handed out, for read-ahead while `wait()` runs.
    handed: Vec<(Weak<RefCell<StreamState>>, Token)>,
    code: Option<i32>,
    /// For a remote process: its remote half. The local child is `ssh`.
    remote: Option<RemoteProcess>,
    /// Why the outcome is unknown (a remote connection failed).
    failure: Option<String>,
}

impl Process {
    pub fn new(
        req: SpawnRequest,
        remote: Option<RemoteProcess>,
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
            outputs: [None, None],
            drains: Vec::new(),
            handed: Vec::new(),
            code: None,
        }
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
        self.code
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
            (Some(r), State::Created) => r.connection().connect(self.owner),
            _ => Ok(Readiness::Ready),
        }
    }

    pub fn exit_token(&self) -> Option<Token> {
        self.exit_token
    }

    pub fn stdin_token(&self) -> Option<Token> {
        self.stdin.as_ref().map(|(_, t)| *t)
    }

    pub fn start(&mut self) -> Result<(), String> {
        match self.state {
            State::Created => {}
            State::Running => return Err("process already started".into()),
            State::Closed => return Err("process is closed".into()),
        }
        children::sweep_orphans();
        if let Some(max) = self.limit.max {
            if self.limit.live.load(Ordering::SeqCst) >= max {
                return Err(format!(
                    "executor '{}' reached its max_processes limit ({max} live processes)",
                    self.limit.executor
                ));
            }
        }
        let spawned = spawn::spawn(&self.req)?;
        // From here on the child exists: register it before anything can fail,
        // so that every path below still ends with it reaped.
        children::register(spawned.pid, self.owner, self.req.process_group, Some(self.limit.live.clone()));
        if let Some(r) = &self.remote {
            children::set_remote_stop(spawned.pid, r.stop_argv(false), r.stop_argv(true));
        }
        self.pid = spawned.pid;
        self.state = State::Running;
        if let Err(e) = self.watch(spawned) {
            self.close(true);
            return Err(e);
        }
        Ok(())
    }

    fn watch(&mut self, spawned: spawn::Spawned) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot watch '{}': {}", self.req.command.describe(), sys::describe(&e));
        self.pidfd = sys::pidfd_open(spawned.pid).map_err(fail)?;
        let mut d = self.driver.borrow_mut();
        self.exit_token = Some(d.add_exit(self.pidfd.as_ref().map(|f| f.as_raw_fd())).map_err(fail)?);
        if let Some(fd) = spawned.stdin {
            let pipe = Rc::new(RefCell::new(StdinPipe::new(fd, self.req.stdin == Stdio::Socket)));
            let t = d.add_writer(pipe.clone()).map_err(fail)?;
            self.stdin = Some((pipe, t));
        }
        for (i, fd) in [spawned.stdout, spawned.stderr].into_iter().enumerate() {
            if let Some(fd) = fd {
                let t = d.add_reader(fd.as_raw_fd()).map_err(fail)?;
                self.outputs[i] = Some((fd, t));
            }
        }
        Ok(())
    }

    /// Reap the child if it has exited. The handle stays open until `finish`.
    pub fn try_wait(&mut self) -> Result<Option<i32>, String> {
        if let Some(c) = self.code {
            return Ok(Some(c));
        }
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        match self.state {
            State::Created => Err("process not started".into()),
            State::Closed => Err("process is closed".into()),
            State::Running => match children::try_reap(self.pid) {
                Ok(Some(c)) => {
                    let c = match &self.remote {
                        Some(r) => match r.interpret(c) {
                            Ok(c) => c,
                            Err(e) => {
                                self.failure = Some(e.clone());
                                return Err(e);
                            }
                        },
                        None => c,
                    };
                    self.code = Some(c);
                    Ok(Some(c))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(format!("waiting for '{}' failed: {}", self.command(), sys::describe(&e))),
            },
        }
    }

    /// `wait()` has begun: no output may hold the child up any more. Output
    /// nobody asked for is discarded; streams handed out are read ahead into
    /// their buffers, so that whoever holds them can still read everything.
    pub fn begin_wait(&mut self) {
        let mut d = self.driver.borrow_mut();
        for slot in self.outputs.iter_mut() {
            if let Some((fd, token)) = slot.take() {
                d.drain(token, fd);
                self.drains.push(token);
            }
        }
        for (weak, token) in self.handed.drain(..) {
            if let Some(state) = weak.upgrade() {
                if state.borrow().is_open() {
                    d.read_ahead(token, state);
                }
            }
        }
    }

    /// `wait()` has returned: close the handle, keep the exit code. Streams
    /// already handed out stay readable to their end.
    pub fn finish(&mut self) {
        self.release_resources();
        self.state = State::Closed;
    }

    /// Send signal `sig` to the running child.
    pub fn signal(&mut self, sig: i32) -> Result<(), String> {
        if !(1..=64).contains(&sig) {
            return Err(format!("invalid signal number {sig}"));
        }
        match self.state {
            State::Created => return Err("process not started".into()),
            State::Closed => return Err("process is closed".into()),
            State::Running => {}
        }
        // A child that exited but was not waited for yet is a zombie, which
        // kill() would accept: reap it first so that it is reported as
        // finished (its code stays available to wait()).
        if self.try_wait()?.is_some() {
            return Err("process has already finished".into());
        }
        if let Some(r) = &self.remote {
            // Delivered by a short ssh of its own; returns once it is sent.
            return children::spawn_detached(r.signal_argv(sig), self.owner)
                .map(|_| ())
                .map_err(|e| format!("signal {sig} to the remote process failed: {e}"));
        }
        match children::signal(self.pid, sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err("process has already finished".into()),
            Err(e) => Err(format!("signal {sig} to pid {} failed: {}", self.pid, sys::describe(&e))),
        }
    }

    /// End the handle: a running child gets SIGTERM (SIGKILL when `force`)
    /// and is reaped in the background. Idempotent.
    pub fn close(&mut self, force: bool) {
        if self.state == State::Running && self.code.is_none() {
            children::abandon(self.pid, self.pidfd.take(), force);
        }
        self.release_resources();
        self.state = State::Closed;
    }

    fn release_resources(&mut self) {
        let mut d = self.driver.borrow_mut();
        if let Some(t) = self.exit_token.take() {
            d.remove(t);
        }
        self.pidfd = None;
        if let Some((pipe, t)) = self.stdin.take() {
            d.remove(t);
            pipe.borrow_mut().discard();
        }
        for slot in self.outputs.iter_mut() {
            if let Some((_, t)) = slot.take() {
                d.remove(t);
            }
        }
        // Drains started by wait() end with the handle: whatever a grandchild
        // still writes there is of no use to anyone, and the descriptor must
        // not outlive the handle.
        for t in self.drains.drain(..) {
            d.remove(t);
        }
    }

    /// Hand out an output stream (once; the binding caches the object).
    pub fn take_stream(&mut self, which: Output) -> Result<Stream, String> {
        match self.state {
            State::Created => return Err("process not started".into()),
            State::Closed => return Err("process is closed".into()),
            State::Running => {}
        }
        let mode = if which == Output::Stdout { self.req.stdout } else { self.req.stderr };
        if mode != Stdio::Pipe && mode != Stdio::Socket {
            return Err(format!("{} is not a pipe (it was set to {:?})", which.name(), mode));
        }
        match self.outputs[which as usize].take() {
            Some((fd, token)) => {
                let stream = Stream::new(fd, token, self.driver.clone());
                self.handed.push((Rc::downgrade(&stream.shared()), token));
                Ok(stream)
            }
            None => Err(format!("{} stream was already taken", which.name())),
        }
    }

    /// Queue `data` for the child's stdin. Returns the bytes still queued:
    /// at or above STDIN_HIGH_WATER the caller should wait on the stdin token.
    pub fn write_stdin(&mut self, data: &[u8]) -> Result<usize, String> {
        // push() writes until the pipe is full; the rest is written by the
        // event loop when the pipe's writable edge comes.
        let (pipe, _) = self.stdin_pipe()?;
        let mut p = pipe.borrow_mut();
        p.push(data)?;
        Ok(p.queued())
    }

    /// Bytes of stdin still queued, or the error that ended the pipe.
    pub fn stdin_queued(&self) -> Result<usize, String> {
        match &self.stdin {
            Some((p, _)) => match p.borrow().error() {
                Some(e) => Err(e.to_string()),
                None => Ok(p.borrow().queued()),
            },
            None => Ok(0),
        }
    }

    pub fn stdin_must_wait(queued: usize) -> bool {
        queued >= STDIN_HIGH_WATER
    }

    /// End-of-file on stdin once queued data is delivered. Idempotent.
    pub fn close_stdin(&mut self) -> Result<(), String> {
        match self.state {
            State::Created => return Err("process not started".into()),
            State::Closed => return Err("process is closed".into()),
            State::Running => {}
        }
        if let Some((pipe, _)) = &self.stdin {
            pipe.borrow_mut().close();
        }
        Ok(())
    }

    fn stdin_pipe(&self) -> Result<(Rc<RefCell<StdinPipe>>, Token), String> {
        match self.state {
            State::Created => return Err("process not started".into()),
            State::Closed => return Err("process is closed".into()),
            State::Running => {}
        }
        match &self.stdin {
            Some((p, t)) => Ok((p.clone(), *t)),
            None => Err(format!("stdin is not a pipe (it was set to {:?})", self.req.stdin)),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.close(false);
    }
}
