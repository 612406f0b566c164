//! `run`'s capture: both outputs read to their end and the child waited
//! for, as one step that the shim calls until it is done, parking on the
//! tokens it returns in between (one call into Rust per wakeup, instead of
//! two reader tasks and a wait).

use super::{Process, State, WaitStep};
use crate::core::error::Error;
use crate::core::io::poller::Token;
use crate::core::io::stream::Got;
use crate::core::os::sys::SignalsHeld;

/// What one `collect_step` found.
#[derive(Debug)]
pub enum CollectStep {
    /// The exit code and everything the child wrote to stdout and stderr
    /// (empty for an output that is not a pipe).
    Done(i32, Vec<u8>, Vec<u8>),
    /// Park on any of these and step again.
    Pending(Vec<Token>),
    Failed(Error),
}

impl Process {
    /// `run`'s start in one call, when nothing must be waited for first:
    /// start, queue `input` for stdin, end stdin. Ok(false), with nothing
    /// done, when the start must wait (a remote connection to bring up, a
    /// `queue = true` slot to wait for): the shim then takes the general
    /// path (connect, queue, start) and feeds stdin itself.
    pub fn begin_run(&mut self, input: Option<&[u8]>) -> Result<bool, Error> {
        if self.state != State::Created || self.remote.is_some() || self.queue_id().is_some() {
            return Ok(false);
        }
        self.start()?;
        // Once started, nothing here fails the call (the child would be
        // left to the caller's error path): a child that does not read its
        // input ends the pipe (EPIPE), which is not an error of `run`; the
        // input stops there and the output and exit code still come.
        if let Some(data) = input.filter(|d| !d.is_empty()) {
            let _ = self.write_stdin(data);
        }
        let _ = self.close_stdin();
        Ok(true)
    }

    /// `run`'s max_output: each output read whole keeps at most `bytes`;
    /// the rest is read and thrown away (the child is not stopped for it).
    pub fn set_max_output(&mut self, bytes: usize) {
        self.max_output = Some(bytes);
    }

    /// Whether an output read whole had more than max_output: either, and
    /// stderr (what `check` quotes).
    pub fn truncated(&self) -> (bool, bool) {
        (self.truncated[0] || self.truncated[1], self.truncated[1])
    }

    /// Read the outputs nobody took as far as they go, then wait. `stop`:
    /// keep what came so far and stop reading (what still holds the pipes
    /// after a timeout is not ours to wait for). With a result come the
    /// tokens other waiters may park on, as with `wait_step`.
    pub fn collect_step(&mut self, stop: bool) -> (CollectStep, [Option<Token>; 2]) {
        if self.state == State::Running && !self.collecting.iter().any(|c| *c) {
            self.begin_collect();
        }
        let mut pending = Vec::new();
        if let Some(outs) = self.outputs.clone() {
            for which in 0..2 {
                if !self.collecting[which] || self.collected[which].is_some() {
                    continue;
                }
                let got = if stop { Ok(Got::Data(outs.take_partial(which))) } else { outs.read_whole(which) };
                match got {
                    Ok(Got::Data(all)) => self.collected[which] = Some(all),
                    Ok(Got::WouldBlock) => {
                        if let Some(t) = self.out_tokens[which] {
                            pending.push(t);
                        }
                        continue;
                    }
                    // A stream read whole is never read ahead, so nothing
                    // is dropped; an end is reported as Data. A failed read
                    // ends the output with what came before it.
                    Ok(Got::Eof | Got::Dropped(_)) | Err(_) => self.collected[which] = Some(outs.take_partial(which)),
                }
                self.truncated[which] |= outs.truncated(which);
                // Done with it: the pipe is closed now, not with the handle.
                if let Some(t) = self.out_tokens[which].take() {
                    self.driver.borrow_mut().remove(t);
                }
                outs.close(which);
            }
        }
        if !pending.is_empty() {
            return (CollectStep::Pending(pending), [None, None]);
        }
        match self.wait_step(false) {
            (WaitStep::Done(code), wake) => {
                let [out, err] = std::mem::take(&mut self.collected);
                (CollectStep::Done(code, out.unwrap_or_default(), err.unwrap_or_default()), wake)
            }
            (WaitStep::Pending(t), _) => (CollectStep::Pending(vec![t]), [None, None]),
            (WaitStep::Failed(e), wake) => (CollectStep::Failed(e), wake),
        }
    }

    /// `collect_step` for a caller that waits alone (no task, timer or other
    /// waiter could run meanwhile): the event loop's turns are taken here,
    /// with nobody else to tell what they report, as the shim's own loop
    /// does then. It returns Pending, after one more step (the shim parks
    /// next, and its turn would not report again what this one took), when
    /// a turn reported nothing (an interrupted wait) or failed (the shim's
    /// own turn reports the error, and its error path ends the process), or
    /// when the host must get control back: a signal arrived (the host's
    /// signals are held back between waits and let in while waiting,
    /// sys::SignalsHeld, so that none goes unseen however it falls), or
    /// `host_waits()` says so (the binding looks at the interpreter's hook).
    /// The shim then lets the interpreter act (its Ctrl-C hook) and parks.
    pub fn collect_alone(&mut self, stop: bool, host_waits: impl Fn() -> bool) -> (CollectStep, [Option<Token>; 2]) {
        let held = SignalsHeld::new();
        let mut ready = Vec::new();
        loop {
            let step = self.collect_step(stop);
            if !matches!(step.0, CollectStep::Pending(_)) {
                return step;
            }
            ready.clear();
            let turned = self.driver.borrow_mut().turn(-1, &mut ready, Some(&held));
            if turned.is_err() || ready.is_empty() || held.arrived() || host_waits() {
                return self.collect_step(stop);
            }
        }
    }

    /// Whether an output `collect_step` reads has not ended yet.
    pub fn collect_open(&self) -> bool {
        self.state == State::Running && (0..2).any(|w| self.collecting[w] && self.collected[w].is_none())
    }

    /// Take the outputs nobody took for reading whole.
    fn begin_collect(&mut self) {
        let Some(outs) = &self.outputs else { return };
        for which in 0..2 {
            if self.out_tokens[which].is_some() && !self.taken[which] {
                self.taken[which] = true;
                self.collecting[which] = true;
                outs.keep_whole(which, self.max_output);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::CommandSpec;
    use crate::core::os::spawn::{SpawnRequest, Stdio};
    use crate::core::process::tests::{poll, process, process_of};

    /// Step until done, polling the process's driver in between (as the
    /// shim parks on the tokens); `stop_after` steps, ask it to stop.
    fn collect(p: &mut Process, stop_after: Option<usize>) -> CollectStep {
        for i in 0..100_000 {
            match p.collect_step(stop_after.is_some_and(|n| i >= n)).0 {
                CollectStep::Pending(tokens) => {
                    assert!(!tokens.is_empty(), "pending with nothing to park on");
                    poll(p, 100);
                }
                other => return other,
            }
        }
        panic!("never done");
    }

    #[test]
    fn both_outputs_come_whole_however_small_the_read_ahead_limit() {
        let mut p = process("head -c 700000 /dev/zero; head -c 500000 /dev/zero >&2; echo end");
        p.set_buffer_limit(1);
        assert!(matches!(p.collect_step(false).0, CollectStep::Failed(Error::NotStarted)));
        p.start().unwrap();
        match collect(&mut p, None) {
            CollectStep::Done(code, out, err) => {
                assert_eq!((code, out.len(), err.len()), (0, 700004, 500000));
                assert!(out.ends_with(b"end\n"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!p.collect_open());
        assert_eq!(p.state(), State::Closed);
    }

    #[test]
    fn begin_run_starts_feeds_and_ends_stdin_in_one_call() {
        let mut p = process("cat; echo done");
        assert_eq!(p.begin_run(Some(b"fed\n")), Ok(true));
        assert_eq!(p.state(), State::Running);
        match collect(&mut p, None) {
            CollectStep::Done(0, out, _) => assert_eq!(out, b"fed\ndone\n"),
            other => panic!("{other:?}"),
        }
        // A child that never reads its input is no error of the start.
        let mut p = process("exit 4");
        assert_eq!(p.begin_run(Some(&vec![b'x'; 1 << 20])), Ok(true));
        assert!(matches!(collect(&mut p, None), CollectStep::Done(4, ..)));
        // Started already: nothing to begin; a queued start is the shim's.
        assert_eq!(p.begin_run(None), Ok(false));
        let mut q = process("true");
        q.limit.queue = true;
        assert_eq!(q.begin_run(None), Ok(false));
        assert_eq!(q.state(), State::Created);
        // A failed start is reported and leaves nothing running.
        let mut full = process("true");
        full.limit.max = Some(0);
        assert!(full.begin_run(None).unwrap_err().to_string().contains("max_processes"));
        assert_eq!(full.state(), State::Created);
    }

    #[test]
    fn collect_alone_runs_the_whole_wait_in_one_call() {
        let mut p = process("echo out; sleep 0.1; echo err >&2; exit 3");
        assert_eq!(p.begin_run(None), Ok(true));
        match p.collect_alone(false, || false).0 {
            CollectStep::Done(3, out, err) => assert_eq!((out, err), (b"out\n".to_vec(), b"err\n".to_vec())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn collect_alone_returns_after_the_turn_in_which_the_host_asks() {
        let mut p = process("echo first; sleep 1; echo second");
        assert_eq!(p.begin_run(None), Ok(true));
        let asked = std::cell::Cell::new(0);
        // The first turn brings "first"; the host asks after it.
        let step = p.collect_alone(false, || {
            asked.set(asked.get() + 1);
            true
        });
        assert!(matches!(step.0, CollectStep::Pending(_)), "{:?}", step.0);
        assert_eq!(asked.get(), 1);
        match collect(&mut p, None) {
            CollectStep::Done(0, out, _) => assert_eq!(out, b"first\nsecond\n"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_signal_ends_collect_alone_and_the_mask_is_restored() {
        extern "C" fn noted(_: libc::c_int) {}
        // SAFETY: installs a handler that does nothing for SIGUSR2, which no
        // other test uses; pthread_self/pthread_kill name a live thread.
        let me = unsafe {
            libc::signal(libc::SIGUSR2, noted as *const () as libc::sighandler_t);
            libc::pthread_self() as usize
        };
        let mut p = process("sleep 5");
        assert_eq!(p.begin_run(None), Ok(true));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(150));
            // SAFETY: `me` is the test's thread, alive until join below.
            unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR2) };
        });
        let t0 = std::time::Instant::now();
        assert!(matches!(p.collect_alone(false, || false).0, CollectStep::Pending(_)));
        assert!(t0.elapsed() < std::time::Duration::from_secs(3), "{:?}", t0.elapsed());
        sender.join().unwrap();
        // SAFETY: reads the thread's mask into a local set.
        let blocked = unsafe {
            let mut now: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
            libc::sigismember(&now, libc::SIGINT) == 1
        };
        assert!(!blocked, "signals are held back only inside the call");
        p.close(true);
    }

    #[test]
    fn a_collection_ended_by_a_signal_loses_no_event() {
        // A host with a SIGCHLD handler: each child's exit is a signal that
        // comes with the exit's own event, in the same turn. The signal ends
        // collect_alone, and the caller parks (a turn of its own) as the
        // shim does: what the last turn took must have been looked at, or
        // the caller's turn waits for ever. The handler is process-wide, so
        // this runs in a process of its own: the test binary, running only
        // this test.
        const ALONE: &str = "LUA_EXEC_TEST_SIGCHLD_HANDLER";
        if std::env::var_os(ALONE).is_none() {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "core::process::collect::tests::a_collection_ended_by_a_signal_loses_no_event"])
                .args(["--test-threads=1", "--nocapture"])
                .env(ALONE, "1")
                // Its own report would count as a second test run.
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if std::time::Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("the collection hung: an event was lost");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let mut report = String::new();
            for pipe in [child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read>), child.stderr.take().map(|p| Box::new(p) as _)] {
                std::io::Read::read_to_string(&mut pipe.unwrap(), &mut report).unwrap();
            }
            assert!(status.success(), "{status}: {report}");
            return;
        }
        extern "C" fn noted(_: libc::c_int) {}
        // SAFETY: installs a do-nothing handler, in this process of its own.
        unsafe { libc::signal(libc::SIGCHLD, noted as *const () as libc::sighandler_t) };
        for _ in 0..50 {
            let mut p = process("echo hi");
            assert_eq!(p.begin_run(None), Ok(true));
            let result = loop {
                match p.collect_alone(false, || false).0 {
                    CollectStep::Pending(_) => {
                        let waited = std::time::Instant::now();
                        poll(&p, 5000);
                        assert!(waited.elapsed() < std::time::Duration::from_secs(4), "an event was lost");
                    }
                    other => break other,
                }
            };
            assert!(matches!(result, CollectStep::Done(0, ref o, _) if o == b"hi\n"), "{result:?}");
        }
    }

    #[test]
    fn an_output_that_is_not_a_pipe_is_empty() {
        let mut req = SpawnRequest::new(CommandSpec::Shell("echo out; echo err >&2".into()));
        req.stdout = Stdio::Null;
        let mut p = process_of(req);
        p.start().unwrap();
        match collect(&mut p, None) {
            CollectStep::Done(0, out, err) => assert_eq!((out, err), (Vec::new(), b"err\n".to_vec())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stopping_keeps_what_came_and_closes_the_pipes() {
        // The child's own child holds stdout open after the child exits.
        let mut p = process("echo first; (sleep 5; echo late) & exit 7");
        p.start().unwrap();
        let t0 = std::time::Instant::now();
        // Step until the first line is in and the child has exited, then stop.
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000);
            if let (CollectStep::Pending(_), _) = p.collect_step(false) {
                poll(&p, 20);
                if t0.elapsed().as_millis() > 300 {
                    break;
                }
            }
        }
        assert!(p.collect_open(), "stdout is still held by the grandchild");
        match collect(&mut p, Some(0)) {
            CollectStep::Done(7, out, _) => assert_eq!(out, b"first\n"),
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed().as_secs() < 3, "did not wait for the grandchild");
        assert!(!p.collect_open());
    }
}
