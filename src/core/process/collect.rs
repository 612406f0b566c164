//! `run`'s capture: both outputs read to their end and the child waited
//! for, as one step that the shim calls until it is done, parking on the
//! tokens it returns in between (one call into Rust per wakeup, instead of
//! two reader tasks and a wait).

use super::{Process, State, WaitStep};
use crate::core::io::poller::Token;
use crate::core::io::stream::Got;

/// What one `collect_step` found.
#[derive(Debug)]
pub enum CollectStep {
    /// The exit code and everything the child wrote to stdout and stderr
    /// (empty for an output that is not a pipe).
    Done(i32, Vec<u8>, Vec<u8>),
    /// Park on any of these and step again.
    Pending(Vec<Token>),
    Failed(String),
}

impl Process {
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
        match self.wait_step() {
            (WaitStep::Done(code), wake) => {
                let [out, err] = std::mem::take(&mut self.collected);
                (CollectStep::Done(code, out.unwrap_or_default(), err.unwrap_or_default()), wake)
            }
            (WaitStep::Pending(t), _) => (CollectStep::Pending(vec![t]), [None, None]),
            (WaitStep::Failed(e), wake) => (CollectStep::Failed(e), wake),
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
                outs.keep_whole(which);
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
        assert!(matches!(p.collect_step(false).0, CollectStep::Failed(e) if e == "process not started"));
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
