//! The child's stdin: queued writes, the direct write of a caller that
//! waits alone, end of file.

use super::*;

impl Process {
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

    fn stdin_pipe(&self) -> Result<(Rc<RefCell<StdinPipe>>, Token), Error> {
        self.running()?;
        match &self.stdin {
            Some((p, t)) => Ok((p.clone(), *t)),
            None => Err(Error::Unsupported(format!("stdin is not a pipe (it was set to \"{}\")", self.req.stdin.name()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{poll, process, wait_done};
    use crate::core::io::stream::StreamRead;
    use super::*;

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
        assert_eq!(wait_done(&mut p), WaitStep::Done(0));
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
        assert_eq!(wait_done(&mut p), WaitStep::Done(0));
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
        assert_eq!(wait_done(&mut p), WaitStep::Done(0));
        // A host whose hook changed gets control back after one turn. (The
        // child reads only later, so the pipe fills; the shell stays, so
        // its stdout does not end, an output event that would end the
        // wait before the hook is asked.)
        let mut q = process("sleep 1; cat > /dev/null; true");
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
}
