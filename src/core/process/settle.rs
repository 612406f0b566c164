//! After `start`: a container process's client runs, but the engine may
//! still fail before the program does (image missing, daemon down, a bad
//! option, the runtime refusing the container). The shim asks `settle`
//! until it says the program was started, parking in between as it does
//! for a remote connection; only then do streams taken before the start
//! get their pipes, so that the engine's message can still be read here.

use super::Process;
use crate::core::error::Error;
use crate::core::os::spawn::Stdio;
use crate::core::remote::Remote;

impl Process {
    /// Ok(true) once the program runs (at once for everything but a fresh
    /// container), Ok(false) while its engine is still at it. Err when the
    /// engine failed first: the process is then closed, and the message is
    /// the engine's.
    pub fn settle(&mut self) -> Result<bool, Error> {
        self.running()?;
        if !matches!(self.remote, Some(Remote::Container(_))) {
            return Ok(true);
        }
        // The client's exit first, then the marker: a marker written just
        // before an exit is then never missed.
        let exited = match self.try_wait() {
            Ok(done) => done.is_some(),
            Err(e) => {
                self.close(true);
                return Err(e);
            }
        };
        let Some(Remote::Container(c)) = &mut self.remote else { return Ok(true) };
        if c.started() {
            return Ok(true);
        }
        if !exited {
            return Ok(false);
        }
        let code = self.code().unwrap_or(-1);
        let output = self.engine_output();
        let Some(Remote::Container(c)) = &self.remote else { return Ok(true) };
        let why = c.failure(code, &output);
        // Not the program's exit code: wait() says the process is closed.
        self.status = None;
        self.close(false);
        Err(Error::Other(why))
    }

    /// What the client wrote where its messages go (its stderr, or stdout
    /// with stderr merged into it or a terminal), when that is ours to read.
    fn engine_output(&self) -> Vec<u8> {
        let which = match (self.req.stderr, self.req.stdout) {
            (Stdio::Pipe | Stdio::Socket, _) => 1,
            (Stdio::Stdout | Stdio::Pty, Stdio::Pipe | Stdio::Socket | Stdio::Pty) => 0,
            _ => return Vec::new(),
        };
        let Some(outs) = &self.outputs else { return Vec::new() };
        if !outs.has(which) {
            return Vec::new();
        }
        // The client has exited: all it wrote is in the pipe.
        outs.read_ahead(which);
        outs.fill(which);
        outs.take_partial(which)
    }
}
