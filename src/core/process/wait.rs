//! Waiting for the child: reaping it when it exits, the state machine of
//! `wait()` (one step per call into Rust), what a wait does to the outputs
//! nobody reads, and `status()`.

use super::*;

impl Process {
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
}
