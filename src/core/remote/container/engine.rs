//! The engine's command-line client: which one answers, with what global
//! arguments, and whether a named container runs.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use crate::core::command::{self, Bytes, CommandSpec};
use crate::core::os::children::{self, Owner};
use crate::core::os::spawn::{self, Redirect, SpawnRequest, Stdio};
use crate::core::remote::ssh::{self, Readiness};

use super::*;

/// Where the resolution of the engine (and for `container =`, the check
/// that the container runs) has got.
pub(super) enum State {
    Unresolved,
    /// Asking candidate `index` whether it answers (`<engine> version`).
    Probing { pid: libc::pid_t, index: usize, log: PathBuf, failures: Vec<String> },
    Resolved { program: Bytes },
    /// `container inspect`: is the existing container running?
    Checking { program: Bytes, pid: libc::pid_t, out: PathBuf, log: PathBuf },
    Ready { program: Bytes },
}

/// The engine of one `exec.docker` resource, shared by every executor and
/// process of it.
pub struct Engine {
    pub(super) config: ContainerConfig,
    pub(super) state: Mutex<State>,
    /// An `exec` process ended with 125 (the engine's own failure, such as
    /// a container that is gone): the next start checks the container again.
    pub(super) recheck: AtomicBool,
}

impl Engine {
    pub fn new(config: ContainerConfig) -> Result<Engine, String> {
        config.validate()?;
        Ok(Engine { config, state: Mutex::new(State::Unresolved), recheck: AtomicBool::new(false) })
    }

    /// The client's environment: ours, overlaid with `engine_env`.
    pub(super) fn client_env(&self) -> Option<Vec<(Bytes, Bytes)>> {
        command::merge_env(true, self.config.engine_env.as_deref(), None)
    }

    /// `program` and the global arguments every command of ours passes.
    pub(super) fn base(&self, program: &OsStr) -> Vec<Bytes> {
        let mut a: Vec<Bytes> = vec![program.into()];
        if let Some(h) = &self.config.host {
            let flag: &[u8] = if Flavour::of(program) == Flavour::Podman { b"--url=" } else { b"--host=" };
            a.push(Bytes::from_vec([flag, h.as_bytes()].concat()));
        }
        a.extend(self.config.engine_args.iter().cloned());
        a
    }

    /// Whether the client talks to a local engine, whose runtime writes
    /// `--pidfile` here (podman's remote client has no such option).
    pub(super) fn local_podman(&self, program: &OsStr) -> bool {
        if Flavour::of(program) != Flavour::Podman || self.config.host.is_some() {
            return false;
        }
        let env = self.client_env();
        let set = |name: &str| match &env {
            Some(e) => e.iter().any(|(k, v)| k == name && !v.is_empty()),
            None => std::env::var_os(name).is_some_and(|v| !v.is_empty()),
        };
        !set("CONTAINER_HOST") && !set("CONTAINER_CONNECTION")
    }

    /// A short command of ours with its output to files (`None`: /dev/null).
    pub(super) fn spawn_quiet(&self, argv: Vec<Bytes>, out: Option<&Path>, err: &Path, owner: Owner) -> Result<libc::pid_t, String> {
        let mut req = SpawnRequest::new(CommandSpec::program(argv)?);
        req.env = self.client_env();
        req.stdin = Stdio::Null;
        req.stdout = Stdio::Null;
        if let Some(o) = out {
            req.stdout = Stdio::File;
            req.redirect[1] = Some(Redirect::Path { path: o.to_path_buf(), append: false, within: None });
        }
        req.stderr = Stdio::File;
        req.redirect[2] = Some(Redirect::Path { path: err.to_path_buf(), append: false, within: None });
        let s = spawn::spawn(&req).map_err(|e| e.to_string())?;
        children::register(s.pid, owner, false, None);
        Ok(s.pid)
    }

    /// Start asking candidate `index` (and the next ones, while they cannot
    /// even be started): Probing, or an error naming every failure.
    pub(super) fn probe_from(&self, mut index: usize, mut failures: Vec<String>, owner: Owner) -> Result<State, String> {
        while index < CANDIDATES.len() {
            let cand = CANDIDATES[index];
            let log = ssh::scratch_file("p")?;
            let mut argv = self.base(OsStr::new(cand));
            argv.push("version".into());
            match self.spawn_quiet(argv, None, &log, owner) {
                Ok(pid) => return Ok(State::Probing { pid, index, log, failures }),
                Err(e) => {
                    let _ = std::fs::remove_file(&log);
                    failures.push(format!("{cand}: {e}"));
                }
            }
            index += 1;
        }
        Err(format!(
            "no container engine answers ({}): install docker or podman, or set the option engine",
            failures.join("; ")
        ))
    }

    /// Bring the engine up for a start: resolve which client to run and,
    /// for `container =`, check that the container runs. Called by
    /// `start()` until it returns `Ready`.
    pub fn connect(&self, owner: Owner) -> Result<Readiness, String> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let next = match std::mem::replace(&mut *st, State::Unresolved) {
                State::Unresolved => match &self.config.engine {
                    Some(e) => {
                        let path = command::child_path(self.client_env().as_deref());
                        command::resolve_program(e, &path, None)
                            .map_err(|why| format!("container engine '{}' not found: {why}", command::shown(e.as_bytes())))?;
                        State::Resolved { program: e.clone() }
                    }
                    None => {
                        *st = self.probe_from(0, Vec::new(), owner)?;
                        return Ok(Readiness::Connecting);
                    }
                },
                State::Probing { pid, index, log, mut failures } => {
                    let Some(ended) = reaped(pid) else {
                        *st = State::Probing { pid, index, log, failures };
                        return Ok(Readiness::Connecting);
                    };
                    let message = engine_message(&read_file(&log));
                    let _ = std::fs::remove_file(&log);
                    match ended {
                        Ok(0) => State::Resolved { program: CANDIDATES[index].into() },
                        other => {
                            let why = match other {
                                Ok(code) if message.is_empty() => format!("exited with code {code}"),
                                Ok(_) => message,
                                Err(e) => e,
                            };
                            failures.push(format!("{}: {why}", CANDIDATES[index]));
                            *st = self.probe_from(index + 1, failures, owner)?;
                            return Ok(Readiness::Connecting);
                        }
                    }
                }
                State::Resolved { program } => match &self.config.container {
                    None => State::Ready { program },
                    Some(name) => {
                        let (out, log) = (ssh::scratch_file("o")?, ssh::scratch_file("p")?);
                        let mut argv = self.base(&program);
                        for a in ["container", "inspect", "--format", "{{.State.Running}}", "--"] {
                            argv.push(a.into());
                        }
                        argv.push(name.clone());
                        match self.spawn_quiet(argv, Some(&out), &log, owner) {
                            Ok(pid) => {
                                *st = State::Checking { program, pid, out, log };
                                return Ok(Readiness::Connecting);
                            }
                            Err(e) => {
                                let _ = std::fs::remove_file(&out);
                                let _ = std::fs::remove_file(&log);
                                *st = State::Resolved { program };
                                return Err(format!("cannot run the container engine: {e}"));
                            }
                        }
                    }
                },
                State::Checking { program, pid, out, log } => {
                    let Some(ended) = reaped(pid) else {
                        *st = State::Checking { program, pid, out, log };
                        return Ok(Readiness::Connecting);
                    };
                    let said = String::from_utf8_lossy(&read_file(&out)).trim().to_string();
                    let why = engine_message(&read_file(&log));
                    let _ = std::fs::remove_file(&out);
                    let _ = std::fs::remove_file(&log);
                    let name = self.config.target();
                    let verdict = match ended {
                        Ok(0) if said == "true" => Ok(()),
                        Ok(0) => Err(format!("container '{name}' is not running")),
                        Ok(code) if !why.is_empty() => Err(format!("container '{name}': {why} (exit code {code})")),
                        Ok(code) => Err(format!("container '{name}' cannot be inspected (exit code {code})")),
                        Err(e) => Err(format!("container '{name}': {e}")),
                    };
                    if let Err(e) = verdict {
                        *st = State::Resolved { program };
                        return Err(e);
                    }
                    State::Ready { program }
                }
                State::Ready { program } => {
                    if self.config.container.is_some() && self.recheck.swap(false, Ordering::Relaxed) {
                        State::Resolved { program }
                    } else {
                        *st = State::Ready { program };
                        return Ok(Readiness::Ready);
                    }
                }
            };
            *st = next;
        }
    }

    /// The client program, once `connect` said Ready.
    pub(super) fn program(&self) -> Option<Bytes> {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Ready { program } => Some(program.clone()),
            _ => None,
        }
    }

    /// Build one process's half (see `ContainerProcess`); the client's
    /// command line is made at start, once the engine is known.
    pub fn prepare(
        self: &Arc<Self>,
        command: &CommandSpec,
        work_dir: Option<&Path>,
        env: Option<&[(Bytes, Bytes)]>,
        [stdin, stdout, stderr]: [Stdio; 3],
        pty: Option<(u16, u16)>,
    ) -> Result<(SpawnRequest, ContainerProcess), String> {
        if self.config.container.is_some() {
            // Fails now rather than at start (a program name env would read
            // as an option or an assignment).
            ssh::command_line(command, None)?;
        }
        // The engines carry a command, its environment and its directory as
        // JSON strings: bytes that are not UTF-8 would arrive as U+FFFD.
        let utf8 = |what: String, b: &[u8]| {
            std::str::from_utf8(b).map(|_| ()).map_err(|_| {
                format!("{what} is not valid UTF-8, which a container engine cannot pass on (it carries commands as JSON text)")
            })
        };
        match command {
            CommandSpec::Shell(s) => utf8("the command".into(), s.as_bytes())?,
            CommandSpec::Argv(a) => {
                for (i, x) in a.iter().enumerate() {
                    utf8(format!("command[{}]", i + 1), x.as_bytes())?;
                }
            }
        }
        for (k, v) in env.unwrap_or(&[]) {
            utf8(format!("env variable '{}'", command::shown(k.as_bytes())), &[k.as_bytes(), v.as_bytes()].concat())?;
        }
        if let Some(d) = work_dir {
            utf8("work_dir".into(), d.as_os_str().as_bytes())?;
        }
        let token = format!("{:016x}", ssh::random_u64());
        let mut req = SpawnRequest::new(command.clone());
        req.stdin = stdin;
        req.stdout = stdout;
        req.stderr = stderr;
        if pty.is_some() {
            req.pty = pty;
            req.new_session = true;
            req.stdin = Stdio::Pty;
            req.stdout = Stdio::Pty;
            req.stderr = Stdio::Pty;
        }
        let fresh = self.config.container.is_none();
        let p = ContainerProcess {
            engine: self.clone(),
            name: if fresh { format!("lua-exec-{token}") } else { String::new() },
            token,
            command: command.clone(),
            work_dir: work_dir.map(Path::to_path_buf),
            env: env.map(<[_]>::to_vec).unwrap_or_default(),
            merge_stderr: stderr == Stdio::Stdout,
            pty: pty.is_some(),
            cidfile: if fresh { Some(ssh::scratch_file("cid")?) } else { None },
            pidfile: if fresh { Some(ssh::scratch_file("pid")?) } else { None },
            program: None,
            marker: None,
            started: false,
        };
        Ok((req, p))
    }
}
