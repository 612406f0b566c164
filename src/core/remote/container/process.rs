//! One container process: its command line, the wait for the engine to
//! say the container exists, its signals and its stop.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use crate::core::command::{self, Bytes, CommandSpec};
use crate::core::os::children::{self, ExitStatus, Owner};
use crate::core::os::spawn::SpawnRequest;
use crate::core::os::sys::signal_name;
use crate::core::remote::ssh::{self, Readiness};

use super::*;

/// One container process's half: how its client is started, signalled and
/// stopped.
pub struct ContainerProcess {
    pub(super) engine: Arc<Engine>,
    /// A fresh container's name (`lua-exec-<token>`); empty with `exec`.
    pub(super) name: String,
    /// The `exec` wrapper's token (its pid file inside the container).
    pub(super) token: String,
    pub(super) command: CommandSpec,
    pub(super) work_dir: Option<PathBuf>,
    pub(super) env: Vec<(Bytes, Bytes)>,
    pub(super) merge_stderr: bool,
    pub(super) pty: bool,
    pub(super) cidfile: Option<PathBuf>,
    pub(super) pidfile: Option<PathBuf>,
    /// The client, known at start.
    pub(super) program: Option<Bytes>,
    /// The file whose content says the container was made (see the module
    /// comment); `None` with `exec`, which has nothing to wait for.
    pub(super) marker: Option<PathBuf>,
    pub(super) started: bool,
}

/// Sends a signal to a fresh container, retried while the engine is still
/// starting it (a container that is created but not yet running refuses
/// `kill`). `$1` the signal, `$2` the container, then the client and its
/// global arguments: no value is ever part of the script's text.
pub(super) const SIGNAL_SCRIPT: &str = "s=$1 c=$2; shift 2; i=0; \
    while ! \"$@\" kill --signal=\"$s\" \"$c\" >/dev/null 2>&1; do \
      case $(\"$@\" container inspect --format '{{.State.Status}}' \"$c\" 2>/dev/null) in \
        created|initialized|configured|running) ;; *) exit 1 ;; esac; \
      [ $i -lt 100 ] || exit 1; i=$((i+1)); sleep 0.02; \
    done";

/// docker's gentle stop: SIGTERM, SIGKILL after the grace, then removal
/// (also of a container that was created and never started, which
/// `--rm` does not remove). `$1` the grace in seconds, `$2` the container,
/// then the client.
pub(super) const DOCKER_STOP_SCRIPT: &str =
    "t=$1 c=$2; shift 2; \"$@\" stop -t \"$t\" \"$c\" >/dev/null 2>&1; \"$@\" rm --force \"$c\" >/dev/null 2>&1";

impl ContainerProcess {
    pub(super) fn config(&self) -> &ContainerConfig {
        &self.engine.config
    }

    pub(super) fn fresh(&self) -> bool {
        self.config().container.is_none()
    }

    /// The command as messages show it: `image: command`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.config().target(), self.command.describe())
    }

    pub fn connect(&self, owner: Owner) -> Result<Readiness, String> {
        self.engine.connect(owner)
    }

    pub(super) fn program(&self) -> Bytes {
        self.program.clone().unwrap_or_else(|| self.config().engine.clone().unwrap_or_else(|| "docker".into()))
    }

    pub(super) fn base(&self) -> Vec<Bytes> {
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

    pub(super) fn run_argv(&mut self, program: &OsStr) -> Vec<Bytes> {
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

    pub(super) fn exec_argv(&self, program: &OsStr) -> Result<Vec<Bytes>, String> {
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
    pub(super) fn exec_script(&self, script: Vec<u8>) -> Vec<Bytes> {
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
    pub(super) fn background(&self, argv: Vec<Bytes>) -> Vec<Bytes> {
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

    pub(super) fn signal_command(&self, sig: i32) -> Vec<Bytes> {
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

    pub(super) fn stop_command(&self, force: bool) -> Vec<Bytes> {
        if !self.fresh() {
            // In a running container: the wrapper's group, as exec.ssh ends it.
            return self.exec_script(ssh::pid_script(&self.token, &ssh::stop_body(force)));
        }
        let c = self.config();
        // The same grace as children::abandon's, in the engines' whole
        // seconds (`-t`).
        let grace = children::GRACE;
        let time: Bytes = if force { "0".into() } else { grace.as_secs_f64().ceil().max(1.0).to_string().into() };
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

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        for f in [&self.cidfile, &self.pidfile].into_iter().flatten() {
            let _ = std::fs::remove_file(f);
        }
    }
}
