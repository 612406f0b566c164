//! Container executors (kind `exec.docker`) through an engine's own
//! command-line client: `docker` or `podman`, driven as Ansible's docker and
//! podman connection plugins drive them (the client, its global arguments,
//! then `run` or `exec` with the command as argv). No engine API of our own.
//!
//! A container process is a local client child:
//! - fresh containers (`image =`): `<engine> run --rm --interactive --init
//!   --name lua-exec-<token> --cidfile F [--pidfile P] <limits> -- image cmd`.
//!   `start()` waits (polled from Lua, as exec.ssh waits for its connection)
//!   until the engine says the container exists: podman's `--pidfile` is
//!   written once the runtime has created the container's process, docker's
//!   `--cidfile` once the container is created. A client that exits before
//!   that failed (image missing, daemon down, a bad option, an OCI runtime
//!   error): `start()` raises with the engine's message.
//! - an existing container (`container =`): `<engine> exec --interactive
//!   -- name sh -c <wrapper> lua-exec <token>`, the wrapper of exec.ssh
//!   (ssh.rs), which records its process group inside the container: no
//!   engine forwards signals to an `exec`'d program.
//!
//! Signals and stops are short extra client commands run in the background
//! (children::spawn_detached), registered in the child table like the ssh
//! ones: `kill --signal=SIG <name>` (retried while the engine still starts
//! the container), `rm --force` (podman: `rm --force --time 1`, SIGTERM then
//! SIGKILL a second later, then removal; docker: `stop -t 1` then
//! `rm --force`), or for `exec` the wrapper's group through a second `exec`.
//! Whatever ends the local client (close, a collected handle, a timeout, the
//! state's end, exit, a signal from anyone) runs the stop, so no container
//! of ours outlives its handle.
//!
//! The parts: a resource's options, checked when defined (`config`), the
//! engine's client and what it answers (`engine`), and one process's
//! command lines, start, signals and stop (`process`).

mod config;
mod engine;
mod process;
#[cfg(test)]
mod tests;

pub use config::{check_work_dir, ContainerConfig};
pub use engine::Engine;
pub use process::ContainerProcess;

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::core::command::{self, Bytes};
use crate::core::os::children;

/// The engines tried, in this order, when `engine` is not given.
pub(super) const CANDIDATES: [&str; 2] = ["docker", "podman"];

/// Which command line the client speaks. They differ only where the
/// clients do: the engine address flag, podman's `--pidfile` and
/// `rm --time`, docker's two-step stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Docker,
    Podman,
}

impl Flavour {
    /// `docker`, `podman`, or a path: podman if its file name says so,
    /// else the docker command line (which compatible clients speak).
    pub fn of(program: &OsStr) -> Flavour {
        let name = Path::new(program).file_name().map(|n| n.as_bytes()).unwrap_or(b"");
        if name.windows(6).any(|w| w == b"podman") {
            Flavour::Podman
        } else {
            Flavour::Docker
        }
    }
}

/// The lines of an engine's output that carry its error ("Error: ..." for
/// podman, "docker: Error response from daemon: ..." for docker), joined by
/// "; "; without such lines the last ones. Progress and retry warnings
/// are left out.
pub fn engine_message(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("Error") || l.starts_with("docker: ") || l.starts_with("ERROR"))
        .collect();
    let chosen = if errors.is_empty() { &lines[lines.len().saturating_sub(3)..] } else { &errors[..] };
    let msg = chosen.join("; ");
    command::shown(msg.as_bytes())
}

/// A short command of ours that has ended: its exit code, or why it is
/// unknown; `None` while it runs.
pub(super) fn reaped(pid: libc::pid_t) -> Option<Result<i32, String>> {
    match children::try_reap(pid) {
        Ok(None) => None,
        Ok(Some(s)) => Some(Ok(s.code())),
        Err(e) => Some(Err(crate::core::os::sys::describe(&e))),
    }
}

pub(super) fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Push `--name=value` as one argument.
pub(super) fn flag(a: &mut Vec<Bytes>, name: &str, value: &OsStr) {
    a.push(Bytes::from_vec([name.as_bytes(), b"=", value.as_bytes()].concat()));
}
