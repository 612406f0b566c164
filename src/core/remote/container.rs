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

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::core::command::{self, Bytes, CommandSpec, Env};
use crate::core::os::children::{self, ExitStatus, Owner};
use crate::core::os::spawn::{self, Redirect, SpawnRequest, Stdio};
use crate::core::os::sys::signal_name;
use crate::core::remote::ssh::{self, Readiness};

/// The engines tried, in this order, when `engine` is not given.
const CANDIDATES: [&str; 2] = ["docker", "podman"];

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

/// The container fields of an `exec.docker` resource (Wippy's names, and
/// ours: `engine`, `engine_args`, `engine_env`, `container`).
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// A fresh container of this image per process.
    pub image: Option<Bytes>,
    /// Or: run every process in this existing container with `exec`.
    pub container: Option<Bytes>,
    /// "docker", "podman" or an absolute path; `None`: the first that answers.
    pub engine: Option<Bytes>,
    /// Global arguments of the client, before the subcommand
    /// (`--root DIR` for podman, `--config DIR` for docker...).
    pub engine_args: Vec<Bytes>,
    /// The client's environment: ours, overlaid with these.
    pub engine_env: Option<Env>,
    /// The engine's address: `--host` for docker, `--url` for podman.
    pub host: Option<Bytes>,
    pub network_mode: Option<Bytes>,
    /// `host:container[:ro|rw]` bind mounts.
    pub volumes: Vec<Bytes>,
    pub user: Option<Bytes>,
    /// Bytes, or a number with a unit (b, k, m, g), as the clients take it.
    pub memory_limit: Option<Bytes>,
    /// Microseconds of CPU per 100 ms period (the CFS quota).
    pub cpu_quota: Option<i64>,
    pub pids_limit: Option<i64>,
    pub read_only_rootfs: Option<bool>,
    pub no_new_privileges: Option<bool>,
    pub cap_drop: Vec<Bytes>,
    pub cap_add: Vec<Bytes>,
    /// `path[:options]` tmpfs mounts.
    pub tmpfs: Vec<Bytes>,
    /// `--rm` (default true: nothing is left behind).
    pub auto_remove: Option<bool>,
}

/// A name-like value: not empty, no blank or control byte, no leading '-'
/// (it is always passed as `--flag=value` or after `--`, this only keeps
/// messages and engines sane).
fn check_token(what: &str, v: &OsStr) -> Result<(), String> {
    let b = v.as_bytes();
    if b.is_empty() || b[0] == b'-' || b.iter().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return Err(format!("{what} '{}' is not valid (empty, starts with '-', or holds a blank or control character)", command::shown(b)));
    }
    Ok(())
}

fn all_of(b: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    !b.is_empty() && b.iter().all(|c| ok(*c))
}

fn absolute_path(b: &[u8]) -> bool {
    b.first() == Some(&b'/') && !b.contains(&0)
}

/// Global arguments that choose the engine's address: `host` does that,
/// so that the library knows a remote engine (no `--pidfile` there).
const ADDRESS_FLAGS: [&str; 8] = ["--remote", "-r", "--url", "--connection", "-c", "-H", "--host", "--context"];

impl ContainerConfig {
    /// Every field checked, with a message naming it.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.image, &self.container) {
            (None, None) => return Err("image is required for kind exec.docker (or container, to run in an existing one)".into()),
            (Some(_), Some(_)) => {
                return Err("image and container cannot both be set: container runs every process in that existing container".into())
            }
            (Some(i), None) => check_token("image", i)?,
            (None, Some(c)) => check_token("container", c)?,
        }
        if self.container.is_some() {
            let fresh_only = [
                ("network_mode", self.network_mode.is_some()),
                ("volumes", !self.volumes.is_empty()),
                ("memory_limit", self.memory_limit.is_some()),
                ("cpu_quota", self.cpu_quota.is_some()),
                ("pids_limit", self.pids_limit.is_some()),
                ("read_only_rootfs", self.read_only_rootfs.is_some()),
                ("no_new_privileges", self.no_new_privileges.is_some()),
                ("cap_drop", !self.cap_drop.is_empty()),
                ("cap_add", !self.cap_add.is_empty()),
                ("tmpfs", !self.tmpfs.is_empty()),
                ("auto_remove", self.auto_remove.is_some()),
            ];
            if let Some((name, _)) = fresh_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{name} applies to a fresh container per process: with container = ..., the existing container's settings hold"
                ));
            }
        }
        if let Some(e) = &self.engine {
            let b = e.as_bytes();
            if !(b == b"docker" || b == b"podman" || (absolute_path(b) && !b.contains(&b'='))) {
                return Err(format!("engine must be \"docker\", \"podman\" or an absolute path (got '{}')", command::shown(b)));
            }
        }
        for a in &self.engine_args {
            let b = a.as_bytes();
            if b.is_empty() || b.contains(&0) {
                return Err("engine_args items must be non-empty strings without NUL bytes".into());
            }
            let flag = b.split(|c| *c == b'=').next().unwrap_or(b);
            if ADDRESS_FLAGS.iter().any(|f| f.as_bytes() == flag) {
                return Err(format!(
                    "engine_args: '{}' chooses the engine's address: use the option host instead",
                    command::shown(b)
                ));
            }
        }
        if let Some(env) = &self.engine_env {
            for (k, _) in env.iter() {
                // (The background commands get them through `env`.)
                ssh::check_env_name(k).map_err(|e| format!("engine_env: {e}"))?;
            }
        }
        if let Some(h) = &self.host {
            check_token("host", h)?;
        }
        if let Some(n) = &self.network_mode {
            check_token("network_mode", n)?;
        }
        for v in &self.volumes {
            let b = v.as_bytes();
            let parts: Vec<&[u8]> = b.split(|c| *c == b':').collect();
            let ok = (parts.len() == 2 || parts.len() == 3)
                && absolute_path(parts[0])
                && absolute_path(parts[1])
                && !b.iter().any(|c| c.is_ascii_control() || *c == b',')
                && (parts.len() == 2 || parts[2] == b"ro" || parts[2] == b"rw");
            if !ok {
                return Err(format!(
                    "volumes: '{}' is not 'host:container' or 'host:container:ro' (two absolute paths without ':' or ',', then ro or rw)",
                    command::shown(b)
                ));
            }
        }
        if let Some(u) = &self.user {
            let b = u.as_bytes();
            let name = |p: &[u8]| all_of(p, |c| c.is_ascii_alphanumeric() || b"_.-".contains(&c)) && p[0] != b'-';
            let ok = match b.iter().position(|c| *c == b':') {
                Some(i) => name(&b[..i]) && name(&b[i + 1..]),
                None => name(b),
            };
            if !ok {
                return Err(format!("user '{}' is not 'name', 'uid' or 'uid:gid'", command::shown(b)));
            }
        }
        if let Some(m) = &self.memory_limit {
            let b = m.as_bytes();
            let digits = b.strip_suffix(b"b").or(b.strip_suffix(b"k")).or(b.strip_suffix(b"m")).or(b.strip_suffix(b"g"));
            let digits = digits.unwrap_or(b);
            if !all_of(digits, |c| c.is_ascii_digit()) || digits.iter().all(|c| *c == b'0') {
                return Err(format!(
                    "memory_limit must be a number of bytes or a number with a unit b, k, m or g, above 0 (got '{}')",
                    command::shown(b)
                ));
            }
        }
        for (what, caps) in [("cap_drop", &self.cap_drop), ("cap_add", &self.cap_add)] {
            for c in caps {
                if !all_of(c.as_bytes(), |b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(format!("{what}: '{}' is not a capability name (e.g. ALL, NET_RAW)", command::shown(c.as_bytes())));
                }
            }
        }
        for t in &self.tmpfs {
            let b = t.as_bytes();
            let (path, opts) = match b.iter().position(|c| *c == b':') {
                Some(i) => (&b[..i], &b[i + 1..]),
                None => (b, &b""[..]),
            };
            let ok = absolute_path(path)
                && !path.iter().any(|c| c.is_ascii_control() || *c == b',')
                && opts.iter().all(|c| c.is_ascii_alphanumeric() || b"=,._+-".contains(c));
            if !ok {
                return Err(format!(
                    "tmpfs: '{}' is not 'path' or 'path:options' (an absolute path, then options such as size=64m,mode=1777)",
                    command::shown(b)
                ));
            }
        }
        Ok(())
    }

    /// What the processes run in, for messages: the image or the container.
    fn target(&self) -> String {
        command::shown(self.image.as_ref().or(self.container.as_ref()).map(|b| b.as_bytes()).unwrap_or(b""))
    }
}

/// A caller's `work_dir` (or the resource's default) for a container: an
/// absolute path there. Under `work_dir_within` it must lead inside once
/// `.` and `..` are resolved by name; the container's own symlinks are not
/// followed (they are the image's, inside the sandbox).
pub fn check_work_dir(dir: &Path, within: Option<&Path>, id: &str) -> Result<PathBuf, String> {
    if !dir.is_absolute() {
        return Err(format!("work_dir '{}' must be an absolute path in the container", command::shown_path(dir)));
    }
    let normal = lexical(dir);
    if let Some(root) = within {
        let root = lexical(root);
        if !normal.starts_with(&root) {
            return Err(format!(
                "work_dir '{}' is outside the work_dir_within of '{id}' ({})",
                command::shown_path(dir),
                command::shown_path(&root)
            ));
        }
    }
    Ok(normal)
}

/// `p` with `.` and `..` resolved by name (`/a/../..` is `/`).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
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
fn reaped(pid: libc::pid_t) -> Option<Result<i32, String>> {
    match children::try_reap(pid) {
        Ok(None) => None,
        Ok(Some(s)) => Some(Ok(s.code())),
        Err(e) => Some(Err(crate::core::os::sys::describe(&e))),
    }
}

fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Where the resolution of the engine (and for `container =`, the check
/// that the container runs) has got.
enum State {
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
    config: ContainerConfig,
    state: Mutex<State>,
    /// An `exec` process ended with 125 (the engine's own failure, such as
    /// a container that is gone): the next start checks the container again.
    recheck: AtomicBool,
}

impl Engine {
    pub fn new(config: ContainerConfig) -> Result<Engine, String> {
        config.validate()?;
        Ok(Engine { config, state: Mutex::new(State::Unresolved), recheck: AtomicBool::new(false) })
    }

    /// The client's environment: ours, overlaid with `engine_env`.
    fn client_env(&self) -> Option<Vec<(Bytes, Bytes)>> {
        command::merge_env(true, self.config.engine_env.as_deref(), None)
    }

    /// `program` and the global arguments every command of ours passes.
    fn base(&self, program: &OsStr) -> Vec<Bytes> {
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
    fn local_podman(&self, program: &OsStr) -> bool {
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
    fn spawn_quiet(&self, argv: Vec<Bytes>, out: Option<&Path>, err: &Path, owner: Owner) -> Result<libc::pid_t, String> {
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
        let s = spawn::spawn(&req)?;
        children::register(s.pid, owner, false, None);
        Ok(s.pid)
    }

    /// Start asking candidate `index` (and the next ones, while they cannot
    /// even be started): Probing, or an error naming every failure.
    fn probe_from(&self, mut index: usize, mut failures: Vec<String>, owner: Owner) -> Result<State, String> {
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
    fn program(&self) -> Option<Bytes> {
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

/// One container process's half: how its client is started, signalled and
/// stopped.
pub struct ContainerProcess {
    engine: Arc<Engine>,
    /// A fresh container's name (`lua-exec-<token>`); empty with `exec`.
    name: String,
    /// The `exec` wrapper's token (its pid file inside the container).
    token: String,
    command: CommandSpec,
    work_dir: Option<PathBuf>,
    env: Vec<(Bytes, Bytes)>,
    merge_stderr: bool,
    pty: bool,
    cidfile: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    /// The client, known at start.
    program: Option<Bytes>,
    /// The file whose content says the container was made (see the module
    /// comment); `None` with `exec`, which has nothing to wait for.
    marker: Option<PathBuf>,
    started: bool,
}

/// Sends a signal to a fresh container, retried while the engine is still
/// starting it (a container that is created but not yet running refuses
/// `kill`). `$1` the signal, `$2` the container, then the client and its
/// global arguments: no value is ever part of the script's text.
const SIGNAL_SCRIPT: &str = "s=$1 c=$2; shift 2; i=0; \
    while ! \"$@\" kill --signal=\"$s\" \"$c\" >/dev/null 2>&1; do \
      case $(\"$@\" container inspect --format '{{.State.Status}}' \"$c\" 2>/dev/null) in \
        created|initialized|configured|running) ;; *) exit 1 ;; esac; \
      [ $i -lt 100 ] || exit 1; i=$((i+1)); sleep 0.02; \
    done";

/// docker's gentle stop: SIGTERM, SIGKILL after the grace, then removal
/// (also of a container that was created and never started, which
/// `--rm` does not remove). `$1` the grace in seconds, `$2` the container,
/// then the client.
const DOCKER_STOP_SCRIPT: &str =
    "t=$1 c=$2; shift 2; \"$@\" stop -t \"$t\" \"$c\" >/dev/null 2>&1; \"$@\" rm --force \"$c\" >/dev/null 2>&1";

impl ContainerProcess {
    fn config(&self) -> &ContainerConfig {
        &self.engine.config
    }

    fn fresh(&self) -> bool {
        self.config().container.is_none()
    }

    /// The command as messages show it: `image: command`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.config().target(), self.command.describe())
    }

    pub fn connect(&self, owner: Owner) -> Result<Readiness, String> {
        self.engine.connect(owner)
    }

    fn program(&self) -> Bytes {
        self.program.clone().unwrap_or_else(|| self.config().engine.clone().unwrap_or_else(|| "docker".into()))
    }

    fn base(&self) -> Vec<Bytes> {
        self.engine.base(&self.program())
    }

    /// Fill in the client's command line, now that the engine is known.
    pub fn complete(&mut self, req: &mut SpawnRequest) -> Result<(), String> {
        let program = self.engine.program().ok_or("the container engine is not ready")?;
        self.program = Some(program.clone());
        req.env = self.engine.client_env();
        // Not the host's directory: podman's conmon, which inherits it,
        // leaves files there (an "oom" file when the memory limit struck).
        req.work_dir = Some(ssh::scratch_dir()?);
        let argv = if self.fresh() { self.run_argv(&program) } else { self.exec_argv(&program)? };
        req.command = CommandSpec::program(argv)?;
        Ok(())
    }

    fn run_argv(&mut self, program: &OsStr) -> Vec<Bytes> {
        let engine = self.engine.clone();
        let c = &engine.config;
        let flavour = Flavour::of(program);
        let mut a = engine.base(program);
        a.push("run".into());
        if c.auto_remove.unwrap_or(true) {
            a.push("--rm".into());
        }
        a.push("--interactive".into());
        a.push("--init".into());
        if self.pty {
            a.push("--tty".into());
        }
        if c.read_only_rootfs == Some(true) {
            a.push("--read-only".into());
        }
        // Each value is one argument with its flag (`--flag=value`), so that
        // no value can be read as another flag.
        flag(&mut a, "--name", OsStr::new(&self.name));
        self.marker = self.cidfile.clone();
        if let Some(f) = &self.cidfile {
            flag(&mut a, "--cidfile", f.as_os_str());
        }
        if engine.local_podman(program) {
            if let Some(f) = &self.pidfile {
                flag(&mut a, "--pidfile", f.as_os_str());
                self.marker = Some(f.clone());
            }
        }
        if self.pty && flavour == Flavour::Podman {
            // Typed bytes are the program's: no key sequence detaches.
            flag(&mut a, "--detach-keys", OsStr::new(""));
        }
        if c.no_new_privileges == Some(true) {
            flag(&mut a, "--security-opt", OsStr::new("no-new-privileges"));
        }
        for (name, v) in [("--network", &c.network_mode), ("--user", &c.user), ("--memory", &c.memory_limit)] {
            if let Some(v) = v {
                flag(&mut a, name, v);
            }
        }
        if let Some(q) = c.cpu_quota {
            flag(&mut a, "--cpu-quota", OsStr::new(&q.to_string()));
        }
        if let Some(n) = c.pids_limit {
            flag(&mut a, "--pids-limit", OsStr::new(&n.to_string()));
        }
        for (name, list) in [("--volume", &c.volumes), ("--cap-drop", &c.cap_drop), ("--cap-add", &c.cap_add), ("--tmpfs", &c.tmpfs)] {
            for v in list {
                flag(&mut a, name, v);
            }
        }
        if let Some(d) = &self.work_dir {
            flag(&mut a, "--workdir", d.as_os_str());
        }
        for (k, v) in &self.env {
            flag(&mut a, "--env", OsStr::from_bytes(&[k.as_bytes(), b"=", v.as_bytes()].concat()));
        }
        a.push("--".into());
        a.push(c.image.clone().unwrap_or_default());
        a.extend(self.command.argv());
        a
    }

    fn exec_argv(&self, program: &OsStr) -> Result<Vec<Bytes>, String> {
        let c = &self.engine.config;
        let mut a = self.engine.base(program);
        a.push("exec".into());
        a.push("--interactive".into());
        if self.pty {
            a.push("--tty".into());
            if Flavour::of(program) == Flavour::Podman {
                a.push("--detach-keys=".into());
            }
        }
        if let Some(u) = &c.user {
            a.push(Bytes::from_vec([b"--user=", u.as_bytes()].concat()));
        }
        for (k, v) in &self.env {
            a.push(Bytes::from_vec([b"--env=", k.as_bytes(), b"=", v.as_bytes()].concat()));
        }
        a.push("--".into());
        a.push(c.container.clone().unwrap_or_default());
        let script = ssh::wrapper(
            &ssh::command_line(&self.command, None)?,
            self.work_dir.as_deref().map(|d| d.as_os_str().as_bytes()),
            self.merge_stderr,
        );
        for s in ["sh".into(), "-c".into(), Bytes::from_vec(script), "lua-exec".into(), self.token.clone().into()] {
            a.push(s);
        }
        Ok(a)
    }

    /// A command that runs `script` in the existing container (as the
    /// resource's user, who owns the wrapper).
    fn exec_script(&self, script: Vec<u8>) -> Vec<Bytes> {
        let c = self.config();
        let mut a = self.base();
        a.push("exec".into());
        if let Some(u) = &c.user {
            a.push(Bytes::from_vec([b"--user=", u.as_bytes()].concat()));
        }
        a.push("--".into());
        a.push(c.container.clone().unwrap_or_default());
        a.extend(["sh".into(), "-c".into(), Bytes::from_vec(script)]);
        a
    }

    /// Whether the program is known to have been started by the engine (see
    /// the module comment). Always true with `exec`.
    pub fn started(&mut self) -> bool {
        if !self.started {
            self.started = match &self.marker {
                None => true,
                Some(f) => std::fs::metadata(f).map(|m| m.len() > 0).unwrap_or(false),
            };
        }
        self.started
    }

    /// Why the start failed: the client exited with `code` before the
    /// container was made, having written `output`.
    pub fn failure(&self, code: i32, output: &[u8]) -> String {
        let engine = command::shown(Path::new(&self.program()).file_name().map(|n| n.as_bytes()).unwrap_or(b"engine"));
        match engine_message(output) {
            m if m.is_empty() => format!("{engine} exited with code {code} before the container started"),
            m => format!("{engine} could not start the container (exit code {code}): {m}"),
        }
    }

    /// A background command of ours (a signal, a stop) with the client's
    /// environment: the child table starts those with ours, so `engine_env`
    /// is given through `env` (its names are portable, the client's path
    /// holds no '=').
    fn background(&self, argv: Vec<Bytes>) -> Vec<Bytes> {
        match &self.config().engine_env {
            Some(env) if !env.is_empty() => {
                let mut a: Vec<Bytes> = vec!["/usr/bin/env".into(), "--".into()];
                a.extend(env.iter().map(|(k, v)| Bytes::from_vec([k.as_bytes(), b"=", v.as_bytes()].concat())));
                a.extend(argv);
                a
            }
            _ => argv,
        }
    }

    /// The local command that delivers `sig` to the program.
    pub fn signal_argv(&self, sig: i32) -> Vec<Bytes> {
        self.background(self.signal_command(sig))
    }

    fn signal_command(&self, sig: i32) -> Vec<Bytes> {
        let name = signal_name(sig).map(str::to_string).unwrap_or_else(|| sig.to_string());
        if self.fresh() {
            let mut a: Vec<Bytes> = vec!["/bin/sh".into(), "-c".into(), SIGNAL_SCRIPT.into(), "sh".into(), name.into(), self.name.clone().into()];
            a.extend(self.base());
            return a;
        }
        let s = match signal_name(sig) {
            Some(n) => format!("-s {n}"),
            None => format!("-{sig}"),
        };
        // SIGKILL ends the wrapper too, before it can remove its pid file.
        let tidy = if sig == libc::SIGKILL { "; rm -f \"$f\"" } else { "" };
        self.exec_script(ssh::pid_script(&self.token, &format!("kill {s} -- -$p{tidy}")))
    }

    /// The local command that ends the program and removes a fresh
    /// container: SIGTERM, SIGKILL a second later (at once when `force`).
    pub fn stop_argv(&self, force: bool) -> Vec<Bytes> {
        self.background(self.stop_command(force))
    }

    fn stop_command(&self, force: bool) -> Vec<Bytes> {
        let c = self.config();
        // The same grace as children::abandon's, in the engines' whole
        // seconds (`-t`), or said in the container's shell.
        let grace = children::GRACE;
        let time: Bytes = if force { "0".into() } else { grace.as_secs_f64().ceil().max(1.0).to_string().into() };
        if !self.fresh() {
            let body = if force {
                "kill -s KILL -- -$p; rm -f \"$f\"".to_string()
            } else {
                format!(
                    "kill -s TERM -- -$p; kill -s CONT -- -$p; \
                     (sleep {}; [ -e \"$f\" ] && kill -s KILL -- -$p; rm -f \"$f\") >/dev/null 2>&1 </dev/null &",
                    grace.as_secs_f64()
                )
            };
            return self.exec_script(ssh::pid_script(&self.token, &body));
        }
        let mut a = self.base();
        if !c.auto_remove.unwrap_or(true) {
            // The owner keeps the containers: stop them, remove nothing.
            a.extend(["stop".into(), "-t".into(), time, self.name.clone().into()]);
            return a;
        }
        match Flavour::of(&self.program()) {
            Flavour::Podman => a.extend(["rm".into(), "--force".into(), "--ignore".into(), "-t".into(), time]),
            Flavour::Docker if force => a.extend(["rm".into(), "--force".into()]),
            Flavour::Docker => {
                let mut s: Vec<Bytes> =
                    vec!["/bin/sh".into(), "-c".into(), DOCKER_STOP_SCRIPT.into(), "sh".into(), time, self.name.clone().into()];
                s.extend(a);
                return s;
            }
        }
        a.push(self.name.clone().into());
        a
    }

    /// The client's exit status is the program's (podman and docker pass
    /// it on; 125 is the engine's own failure, 126 and 127 keep their
    /// meaning). An `exec` that ended with 125 makes the next start check
    /// the container again.
    pub fn interpret(&self, status: ExitStatus) -> Result<ExitStatus, String> {
        if !self.fresh() && status.signal().is_none() && status.code() == 125 {
            self.engine.recheck.store(true, Ordering::Relaxed);
        }
        Ok(status)
    }
}

/// Push `--name=value` as one argument.
fn flag(a: &mut Vec<Bytes>, name: &str, value: &OsStr) {
    a.push(Bytes::from_vec([name.as_bytes(), b"=", value.as_bytes()].concat()));
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        for f in [&self.cidfile, &self.pidfile].into_iter().flatten() {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(over: impl FnOnce(&mut ContainerConfig)) -> ContainerConfig {
        let mut c = ContainerConfig { image: Some("localhost/img:1".into()), ..Default::default() };
        over(&mut c);
        c
    }

    fn strings(v: &[Bytes]) -> Vec<String> {
        v.iter().map(|b| b.to_string_lossy().into_owned()).collect()
    }

    /// The client's argv for `command`, with the engine taken as known.
    fn argv_of(c: ContainerConfig, program: &str, command: CommandSpec, env: &[(&str, &str)], dir: Option<&str>) -> (Vec<String>, ContainerProcess) {
        let e = Arc::new(Engine::new(c).unwrap());
        *e.state.lock().unwrap() = State::Ready { program: program.into() };
        let env: Vec<(Bytes, Bytes)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let (mut req, mut p) =
            e.prepare(&command, dir.map(Path::new), Some(&env), [Stdio::Pipe; 3], None).unwrap();
        p.complete(&mut req).unwrap();
        (strings(&req.command.argv()), p)
    }

    #[test]
    fn fresh_containers_get_every_limit_as_one_argument_each() {
        let c = fresh(|c| {
            c.engine = Some("docker".into());
            c.host = Some("tcp://10.0.0.5:2375".into());
            c.engine_args = vec!["--config".into(), "/etc/d".into()];
            c.network_mode = Some("none".into());
            c.volumes = vec!["/srv/data:/data:ro".into()];
            c.user = Some("1000:1000".into());
            c.memory_limit = Some("256m".into());
            c.cpu_quota = Some(50000);
            c.pids_limit = Some(64);
            c.read_only_rootfs = Some(true);
            c.no_new_privileges = Some(true);
            c.cap_drop = vec!["ALL".into()];
            c.cap_add = vec!["NET_BIND_SERVICE".into()];
            c.tmpfs = vec!["/tmp:size=64m".into()];
        });
        let (argv, p) = argv_of(c, "docker", CommandSpec::Shell("echo $A; it's".into()), &[("A", "x y=z")], Some("/work"));
        let cid = p.cidfile.clone().unwrap();
        let want = [
            "docker", "--host=tcp://10.0.0.5:2375", "--config", "/etc/d", "run", "--rm", "--interactive", "--init",
            "--read-only", &format!("--name={}", p.name), &format!("--cidfile={}", cid.display()),
            "--security-opt=no-new-privileges", "--network=none", "--user=1000:1000", "--memory=256m",
            "--cpu-quota=50000", "--pids-limit=64", "--volume=/srv/data:/data:ro", "--cap-drop=ALL",
            "--cap-add=NET_BIND_SERVICE", "--tmpfs=/tmp:size=64m", "--workdir=/work", "--env=A=x y=z", "--",
            "localhost/img:1", "/bin/sh", "-c", "echo $A; it's",
        ];
        assert_eq!(argv, want);
        // docker: no --pidfile, the cidfile is what start() waits for.
        assert_eq!(p.marker.as_ref(), Some(&cid));
        assert!(p.name.starts_with("lua-exec-") && p.name.len() == 25, "{}", p.name);
    }

    #[test]
    fn local_podman_writes_a_pidfile_and_a_remote_one_does_not() {
        let (argv, p) = argv_of(fresh(|_| {}), "podman", CommandSpec::Argv(vec!["true".into()]), &[], None);
        let pid = p.pidfile.clone().unwrap();
        assert!(argv.contains(&format!("--pidfile={}", pid.display())), "{argv:?}");
        assert_eq!(p.marker.as_ref(), Some(&pid));
        assert_eq!(&argv[argv.len() - 3..], ["--", "localhost/img:1", "true"]);
        let (argv, p) = argv_of(fresh(|c| c.host = Some("unix:///run/podman.sock".into())), "/usr/bin/podman",
            CommandSpec::Argv(vec!["true".into()]), &[], None);
        assert_eq!(argv[1], "--url=unix:///run/podman.sock");
        assert!(!argv.iter().any(|a| a.starts_with("--pidfile")), "{argv:?}");
        assert_eq!(p.marker, p.cidfile);
        // auto_remove = false: no --rm.
        let (argv, _) = argv_of(fresh(|c| c.auto_remove = Some(false)), "podman", CommandSpec::Argv(vec!["true".into()]), &[], None);
        assert!(!argv.iter().any(|a| a == "--rm"), "{argv:?}");
    }

    #[test]
    fn signals_and_stops_name_the_container_and_pass_values_as_arguments() {
        let (_, p) = argv_of(fresh(|c| c.engine_args = vec!["--root".into(), "/x y".into()]), "podman",
            CommandSpec::Argv(vec!["sleep".into(), "9".into()]), &[], None);
        let s = strings(&p.signal_argv(libc::SIGTERM));
        assert_eq!(&s[..2], ["/bin/sh", "-c"]);
        assert_eq!(&s[3..], ["sh", "TERM", &p.name, "podman", "--root", "/x y"]);
        assert_eq!(strings(&p.stop_argv(false)), ["podman", "--root", "/x y", "rm", "--force", "--ignore", "-t", "1", &p.name]);
        assert_eq!(strings(&p.stop_argv(true))[7], "0");
        // The client's environment reaches the background commands too.
        let (_, e) = argv_of(fresh(|c| c.engine_env = Some(Env::new("engine_env", vec![("CONTAINERS_CONF".into(), "/x/c.conf".into())]).unwrap())), "podman",
            CommandSpec::Argv(vec!["true".into()]), &[], None);
        assert_eq!(&strings(&e.stop_argv(true))[..4], ["/usr/bin/env", "--", "CONTAINERS_CONF=/x/c.conf", "podman"]);
        assert_eq!(&strings(&e.signal_argv(9))[..4], ["/usr/bin/env", "--", "CONTAINERS_CONF=/x/c.conf", "/bin/sh"]);
        let (_, d) = argv_of(fresh(|_| {}), "docker", CommandSpec::Argv(vec!["true".into()]), &[], None);
        assert_eq!(strings(&d.stop_argv(true)), ["docker", "rm", "--force", &d.name]);
        let gentle = strings(&d.stop_argv(false));
        assert_eq!(&gentle[3..], ["sh", "1", &d.name, "docker"]);
        // The scripts themselves run: with a fake client that records its
        // arguments, each value arrives as one argument.
        let dir = std::env::temp_dir().join(format!("lua-exec-fake-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let fake = dir.join("docker");
        std::fs::write(&fake, format!("#!/bin/sh\nfor a; do printf '[%s]' \"$a\"; done >>'{}'; echo >>'{}'\n", log.display(), log.display())).unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
        let mut argv = gentle.clone();
        argv[6] = fake.to_string_lossy().into_owned();
        let st = std::process::Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
        assert!(st.success());
        let got = std::fs::read_to_string(&log).unwrap();
        assert_eq!(got, format!("[stop][-t][1][{0}]\n[rm][--force][{0}]\n", d.name));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exec_mode_runs_the_wrapper_and_signals_its_group() {
        let c = ContainerConfig { container: Some("box".into()), user: Some("app".into()), ..Default::default() };
        let (argv, p) = argv_of(c, "podman", CommandSpec::Argv(vec!["echo".into(), "a b".into()]), &[("K", "v")], Some("/srv"));
        assert_eq!(&argv[..7], ["podman", "exec", "--interactive", "--user=app", "--env=K=v", "--", "box"]);
        assert_eq!(&argv[7..9], ["sh", "-c"]);
        assert!(argv[9].contains("cd -- '/srv'") && argv[9].contains("env -- 'echo' 'a b'"), "{}", argv[9]);
        assert_eq!(&argv[10..], ["lua-exec", &p.token]);
        assert_eq!(p.marker, None);
        let s = strings(&p.signal_argv(libc::SIGINT));
        assert_eq!(&s[..6], ["podman", "exec", "--user=app", "--", "box", "sh"]);
        assert!(s[7].contains(&p.token) && s[7].ends_with("kill -s INT -- -$p"), "{}", s[7]);
        // The wrapper's own programs: a program name env would misread.
        let e = Arc::new(Engine::new(ContainerConfig { container: Some("box".into()), ..Default::default() }).unwrap());
        assert!(e.prepare(&CommandSpec::Argv(vec!["A=1".into()]), None, None, [Stdio::Pipe; 3], None).is_err());
    }

    #[test]
    fn configurations_are_checked_field_by_field() {
        let bad: Vec<(ContainerConfig, &str)> = vec![
            (ContainerConfig::default(), "image is required"),
            (fresh(|c| c.container = Some("x".into())), "cannot both be set"),
            (fresh(|c| c.image = Some("-x".into())), "image '-x'"),
            (fresh(|c| c.image = Some("a b".into())), "image 'a b'"),
            (fresh(|c| c.engine = Some("nerdctl".into())), "engine must be"),
            (fresh(|c| c.engine_args = vec!["--url=tcp://x".into()]), "use the option host"),
            (fresh(|c| c.engine_args = vec!["-H".into()]), "use the option host"),
            (fresh(|c| c.volumes = vec!["data:/data".into()]), "volumes"),
            (fresh(|c| c.volumes = vec!["/a:/b:rx".into()]), "volumes"),
            (fresh(|c| c.volumes = vec!["/a:/b:ro:x".into()]), "volumes"),
            (fresh(|c| c.user = Some("root; x".into())), "user"),
            (fresh(|c| c.memory_limit = Some("0".into())), "memory_limit"),
            (fresh(|c| c.memory_limit = Some("12x".into())), "memory_limit"),
            (fresh(|c| c.cap_add = vec!["NET RAW".into()]), "cap_add"),
            (fresh(|c| c.tmpfs = vec!["tmp".into()]), "tmpfs"),
            (fresh(|c| c.tmpfs = vec!["/tmp:size=1m;x".into()]), "tmpfs"),
            (fresh(|c| c.network_mode = Some("".into())), "network_mode"),
            (fresh(|c| c.engine_env = Some(Env::new("engine_env", vec![("A-B".into(), "1".into())]).unwrap())), "engine_env: env variable name 'A-B'"),
            (fresh(|c| c.engine = Some("/opt/a=b/docker".into())), "engine must be"),
            (ContainerConfig { container: Some("x".into()), pids_limit: Some(5), ..Default::default() }, "pids_limit applies"),
        ];
        for (c, want) in bad {
            let e = c.validate().unwrap_err();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        let good = fresh(|c| {
            c.memory_limit = Some("268435456".into());
            c.volumes = vec!["/a:/b".into(), "/c:/d:rw".into()];
            c.tmpfs = vec!["/tmp".into(), "/run:rw,size=1m,mode=1777".into()];
            c.user = Some("65534".into());
            c.engine = Some("/usr/local/bin/docker".into());
        });
        assert!(good.validate().is_ok());
    }

    #[test]
    fn work_dirs_are_absolute_and_stay_within_by_name() {
        let within = Some(Path::new("/srv/build"));
        assert_eq!(check_work_dir(Path::new("/srv/build/a/./b"), within, "x:y").unwrap(), Path::new("/srv/build/a/b"));
        assert!(check_work_dir(Path::new("/srv/build/../etc"), within, "x:y").unwrap_err().contains("outside the work_dir_within"));
        assert!(check_work_dir(Path::new("/srv/buildx"), within, "x:y").is_err());
        assert!(check_work_dir(Path::new("rel"), None, "x:y").unwrap_err().contains("absolute"));
    }

    #[test]
    fn engine_messages_keep_the_error_lines() {
        let podman = b"Trying to pull localhost/x:1...\ntime=\"...\" level=warning msg=\"Failed, retrying\"\nError: initializing source docker://localhost/x:1: connection refused\n";
        assert_eq!(engine_message(podman), "Error: initializing source docker://localhost/x:1: connection refused");
        let docker = b"docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n\nRun 'docker run --help' for more information\n";
        assert_eq!(engine_message(docker), "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?");
        assert_eq!(engine_message(b"a\nb\nc\nd\n"), "b; c; d");
        assert_eq!(Flavour::of(OsStr::new("/opt/podman-4/bin/podman")), Flavour::Podman);
        assert_eq!(Flavour::of(OsStr::new("docker")), Flavour::Docker);
    }
}
