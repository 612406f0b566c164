//! Remote executors: processes on other hosts through OpenSSH (`ssh`), and
//! in containers through an engine's client (`container`). Both are a local
//! client child with a remote half that knows how to signal and stop what
//! the client started; `Remote` is that half, whichever kind.

pub(crate) mod container;
pub(crate) mod ssh;

use std::path::Path;
use std::sync::Arc;

use crate::core::command::{Bytes, CommandSpec};
use crate::core::os::children::{ExitStatus, Owner};
use crate::core::os::spawn::{SpawnRequest, Stdio};
use container::{ContainerProcess, Engine};
use ssh::{Connection, Readiness, RemoteProcess};

/// Where an executor's processes run when not here.
#[derive(Clone)]
pub enum Target {
    Ssh(Arc<Connection>),
    Container(Arc<Engine>),
}

impl Target {
    /// The local client's request and the remote half for one process;
    /// `stdio` is stdin, stdout and stderr.
    pub fn prepare(
        &self,
        command: &CommandSpec,
        work_dir: Option<&Path>,
        env: Option<&[(Bytes, Bytes)]>,
        stdio: [Stdio; 3],
        pty: Option<(u16, u16)>,
    ) -> Result<(SpawnRequest, Remote), String> {
        match self {
            Target::Ssh(conn) => {
                let [stdin, stdout, stderr] = stdio;
                let (req, r) = conn.prepare(command, work_dir, env, stdin, stdout, stderr)?;
                Ok((req, Remote::Ssh(r)))
            }
            Target::Container(engine) => {
                let (req, r) = engine.prepare(command, work_dir, env, stdio, pty)?;
                Ok((req, Remote::Container(r)))
            }
        }
    }
}

/// The remote half of one process.
pub enum Remote {
    Ssh(RemoteProcess),
    Container(ContainerProcess),
}

impl Remote {
    /// Bring up what the start needs (the shared connection, the engine).
    pub fn connect(&self, owner: Owner) -> Result<Readiness, String> {
        match self {
            Remote::Ssh(r) => r.connection().connect(owner),
            Remote::Container(c) => c.connect(owner),
        }
    }

    /// Fill in the local client's command line, just before it starts.
    pub fn complete(&mut self, req: &mut SpawnRequest) -> Result<(), String> {
        match self {
            Remote::Ssh(_) => Ok(()),
            Remote::Container(c) => c.complete(req),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Remote::Ssh(r) => r.describe(),
            Remote::Container(c) => c.describe(),
        }
    }

    pub fn signal_argv(&self, sig: i32) -> Vec<Bytes> {
        match self {
            Remote::Ssh(r) => r.signal_argv(sig),
            Remote::Container(c) => c.signal_argv(sig),
        }
    }

    pub fn stop_argv(&self, force: bool) -> Vec<Bytes> {
        match self {
            Remote::Ssh(r) => r.stop_argv(force),
            Remote::Container(c) => c.stop_argv(force),
        }
    }

    pub fn interpret(&self, status: ExitStatus) -> Result<ExitStatus, String> {
        match self {
            Remote::Ssh(r) => r.interpret(status),
            Remote::Container(c) => c.interpret(status),
        }
    }
}
