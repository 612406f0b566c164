//! The resource registry: named resources, and the process executors
//! acquired from it.
//!
//! The registry always holds `process:native`. Users define more with a
//! kind; `exec.native` resources are process executors with optional
//! defaults and limits, any other kind is stored but cannot be used here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use super::policy::Policy;
use super::command::{self, CommandSpec, Env};
use super::process::Limit;
use crate::core::os::spawn::attrs::{Attrs, PassedFd};
use crate::core::os::spawn::{Redirect, SpawnRequest, Stdio};
use crate::core::os::sys;
use crate::core::remote::container::{self, ContainerConfig, Engine};
use crate::core::remote::ssh::{Connection, SshTarget};
use crate::core::remote::{Remote, Target};

pub const NATIVE_KIND: &str = "exec.native";
pub const SSH_KIND: &str = "exec.ssh";
pub const CONTAINER_KIND: &str = "exec.docker";
pub const NATIVE_ID: &str = "process:native";

/// Configuration of an `exec.native` resource.
#[derive(Debug, Clone, Default)]
pub struct ExecutorConfig {
    pub default_work_dir: Option<PathBuf>,
    pub default_env: Option<Env>,
    /// What a caller may run and set (`command_whitelist`, `allowed_env`,
    /// `work_dir_within`): see policy.rs.
    pub policy: Policy,
    pub max_processes: Option<std::num::NonZeroUsize>,
    /// A start beyond `max_processes` waits for a slot instead of failing.
    pub queue: bool,
    /// `default_env` and a caller's `env` overlay our environment instead
    /// of replacing it.
    pub inherit_env: bool,
    /// A restricted resource lets callers give a child the host's own
    /// stdin, stdout or stderr (`"inherit"`); see policy.rs.
    pub allow_inherit: bool,
    /// Limits, identity, umask, niceness, death with the parent: the
    /// ceilings a caller may only tighten (exec.native only; attrs.rs).
    pub attrs: Attrs,
}

enum Resource {
    Native { config: Arc<ExecutorConfig>, live: Arc<AtomicUsize> },
    /// An `exec.ssh` host: the same configuration, applied remotely, and
    /// the one connection every executor acquired from it shares.
    Ssh { config: Arc<ExecutorConfig>, live: Arc<AtomicUsize>, conn: Arc<Connection> },
    /// An `exec.docker` resource: a container per process (or one existing
    /// container), through the engine every executor acquired from it shares.
    Container { config: Arc<ExecutorConfig>, live: Arc<AtomicUsize>, engine: Arc<Engine> },
    Other { kind: String },
}

pub struct Registry {
    resources: HashMap<String, Resource>,
}

/// Largest resource file `exec.registry.load` reads, in bytes.
pub const FILE_LIMIT: usize = 16 << 20;
/// Most the Lua state's memory may grow, in bytes, while
/// `exec.registry.load` evaluates a resource file in Lua syntax.
pub const MEMORY_LIMIT: usize = 16 << 20;

/// What `Executor::prepare` returns.
pub type Prepared = (SpawnRequest, Option<Remote>, Option<usize>);

/// Options of one `executor:exec` call, already type-checked.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub work_dir: Option<PathBuf>,
    pub env: Option<Env>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// `process_group` as the caller gave it (`None`: the default, see
    /// `own_group`).
    pub process_group: Option<bool>,
    /// The command has a `timeout`.
    pub timed: bool,
    /// Read-ahead limit per process, in bytes (`None`: the default).
    pub buffer_limit: Option<usize>,
    /// Start from our environment (`None`: the resource's choice).
    pub inherit_env: Option<bool>,
    /// The files of streams set to `Stdio::File`.
    pub redirect: [Option<Redirect>; 3],
    /// A new session, never ended by the library (`detach`).
    pub detach: bool,
    /// A pseudo-terminal of (rows, cols) for stdin, stdout and stderr.
    pub pty: Option<(u16, u16)>,
    /// Limits, identity, umask, niceness, death with the parent (attrs.rs).
    pub attrs: Attrs,
    /// Descriptors beyond 0-2 handed to the child at their numbers.
    pub fds: Vec<PassedFd>,
    /// The name the program sees as argv[0].
    pub argv0: Option<command::Bytes>,
}

/// Whether a command leads a process group of its own: when the caller
/// says so; by default when it is a shell command or has a timeout, so that
/// whatever ends or signals it (close, signal, a timeout, a collected
/// handle, the state's end, an interrupted `run`) reaches everything the
/// shell started (dash forks for all but its last simple command). Not by
/// default when it reads our terminal: a child outside the terminal's
/// foreground group would be stopped (SIGTTIN) as soon as it read.
pub fn own_group(asked: Option<bool>, shell_or_timed: bool, stdin: Stdio) -> bool {
    asked.unwrap_or_else(|| shell_or_timed && !(stdin == Stdio::Inherit && sys::is_tty(0)))
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            work_dir: None,
            env: None,
            stdin: Stdio::Pipe,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
            process_group: None,
            timed: false,
            buffer_limit: None,
            inherit_env: None,
            redirect: [None, None, None],
            detach: false,
            pty: None,
            attrs: Attrs::default(),
            fds: Vec::new(),
            argv0: None,
        }
    }
}

/// A process executor acquired from the registry.
pub struct Executor {
    id: String,
    config: Arc<ExecutorConfig>,
    live: Arc<AtomicUsize>,
    /// Set for remote executors (exec.ssh and exec.docker).
    remote: Option<Target>,
    released: bool,
}

fn validate_id(id: &str) -> Result<(), String> {
    match id.split_once(':') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !id.contains('\0') => Ok(()),
        _ => Err(format!("resource id '{}' is not of the form 'namespace:name'", command::shown(id.as_bytes()))),
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        let mut resources = HashMap::new();
        resources.insert(
            NATIVE_ID.to_string(),
            Resource::Native { config: Arc::new(ExecutorConfig::default()), live: Arc::new(AtomicUsize::new(0)) },
        );
        Registry { resources }
    }

    /// `id` is well formed and not yet taken.
    fn check_free(&self, id: &str) -> Result<(), String> {
        validate_id(id)?;
        if self.resources.contains_key(id) {
            return Err(format!("resource '{}' is already defined", command::shown(id.as_bytes())));
        }
        Ok(())
    }

    fn insert(&mut self, id: &str, r: Resource) -> Result<(), String> {
        self.check_free(id)?;
        self.resources.insert(id.to_string(), r);
        Ok(())
    }

    pub fn define_native(&mut self, id: &str, config: ExecutorConfig) -> Result<(), String> {
        self.insert(id, Resource::Native { config: Arc::new(config), live: Arc::new(AtomicUsize::new(0)) })
    }

    pub fn define_ssh(&mut self, id: &str, config: ExecutorConfig, target: SshTarget) -> Result<(), String> {
        // Before the connection is made: that creates our scratch directory.
        self.check_free(id)?;
        let conn = Arc::new(Connection::new(target)?);
        self.insert(id, Resource::Ssh { config: Arc::new(config), live: Arc::new(AtomicUsize::new(0)), conn })
    }

    pub fn define_container(&mut self, id: &str, config: ExecutorConfig, c: ContainerConfig) -> Result<(), String> {
        if config.inherit_env {
            return Err("inherit_env has no meaning for kind exec.docker: a container's environment starts from its image's".into());
        }
        if let Some(d) = &config.default_work_dir {
            container::check_work_dir(d, None, id).map_err(|e| format!("default_{e}"))?;
        }
        let engine = Arc::new(Engine::new(c)?);
        self.insert(id, Resource::Container { config: Arc::new(config), live: Arc::new(AtomicUsize::new(0)), engine })
    }

    /// Remove a resource (used to undo a partly applied `registry.load`).
    /// Executors already acquired keep working.
    pub fn undefine(&mut self, id: &str) -> bool {
        id != NATIVE_ID && self.resources.remove(id).is_some()
    }

    pub fn define_other(&mut self, id: &str, kind: &str) -> Result<(), String> {
        if kind.is_empty() {
            return Err("kind must not be empty".into());
        }
        self.insert(id, Resource::Other { kind: kind.to_string() })
    }

    /// The kind of a defined resource.
    pub fn kind(&self, id: &str) -> Option<&str> {
        self.resources.get(id).map(|r| match r {
            Resource::Native { .. } => NATIVE_KIND,
            Resource::Ssh { .. } => SSH_KIND,
            Resource::Container { .. } => CONTAINER_KIND,
            Resource::Other { kind } => kind.as_str(),
        })
    }

    /// Acquire a process executor.
    pub fn acquire(&self, id: &str) -> Result<Executor, String> {
        match self.resources.get(id) {
            None => Err(format!("resource '{}' does not exist", command::shown(id.as_bytes()))),
            Some(Resource::Other { kind }) => {
                Err(format!("resource '{id}' is not a process executor (its kind is '{}')", command::shown(kind.as_bytes())))
            }
            // The remote default_work_dir can only be checked by running.
            Some(Resource::Ssh { config, live, conn }) => Ok(Executor {
                id: id.to_string(),
                config: config.clone(),
                live: live.clone(),
                remote: Some(Target::Ssh(conn.clone())),
                released: false,
            }),
            // The engine is asked at the first start, as a connection is made.
            Some(Resource::Container { config, live, engine }) => Ok(Executor {
                id: id.to_string(),
                config: config.clone(),
                live: live.clone(),
                remote: Some(Target::Container(engine.clone())),
                released: false,
            }),
            Some(Resource::Native { config, live }) => acquire_native(id, config, live),
        }
    }
}

/// The names of stdin, stdout and stderr, by their descriptor number.
const STREAMS: [&str; 3] = ["stdin", "stdout", "stderr"];

fn acquire_native(id: &str, config: &Arc<ExecutorConfig>, live: &Arc<AtomicUsize>) -> Result<Executor, String> {
    if let Some(dir) = &config.default_work_dir {
        command::check_dir("default_work_dir", dir).map_err(|e| format!("cannot acquire '{id}': {e}"))?;
    }
    Ok(Executor { id: id.to_string(), config: config.clone(), live: live.clone(), remote: None, released: false })
}

impl Executor {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn is_released(&self) -> bool {
        self.released
    }

    /// Idempotent; processes already created keep working.
    pub fn release(&mut self) {
        self.released = true;
    }

    pub fn limit(&self) -> Limit {
        Limit {
            executor: self.id.clone(),
            live: self.live.clone(),
            max: self.config.max_processes.map(|n| n.get()),
            queue: self.config.queue,
        }
    }

    /// On a restricted resource (policy.rs): the host's own stdio and
    /// environment only where the owner allowed them.
    fn check_restricted_options(&self, opts: &ExecOptions) -> Result<(), String> {
        if !self.config.policy.restricts_stdio() {
            return Ok(());
        }
        let id = &self.id;
        if !self.config.allow_inherit {
            let modes = [opts.stdin, opts.stdout, opts.stderr];
            if let Some(i) = modes.iter().position(|m| *m == Stdio::Inherit) {
                let s = STREAMS[i];
                return Err(format!(
                    "{s} = \"inherit\" is not allowed on '{id}': it would give the command the host's own {s} \
                     (the resource's owner can allow it with allow_inherit = true)"
                ));
            }
        }
        if opts.inherit_env == Some(true) && !self.config.inherit_env {
            return Err(format!(
                "inherit_env = true is not allowed on '{id}': it would give the command the host's environment \
                 (the resource's owner can set inherit_env = true)"
            ));
        }
        Ok(())
    }

    /// The attributes a process of this executor gets (attrs.rs): the
    /// resource's, tightened by the caller's. None of them for a remote
    /// command, which is not started here.
    fn check_attrs(&self, opts: &ExecOptions) -> Result<Attrs, String> {
        let id = &self.id;
        if self.remote.is_some() {
            let mut named = opts.attrs.names();
            named.extend(opts.argv0.as_ref().map(|_| "argv0"));
            named.extend((!opts.fds.is_empty()).then_some("fds"));
            self.refuse_remote(&named)?;
            return Ok(Attrs::default());
        }
        let attrs = self.config.attrs.tightened_by(&opts.attrs, id)?.completed()?;
        if opts.detach && attrs.kill_on_parent_death == Some(true) {
            return Err(format!(
                "detach and kill_on_parent_death cannot be combined on '{id}': a detached child outlives us, \
                 one with kill_on_parent_death dies with us"
            ));
        }
        if opts.argv0.is_some() && self.config.policy.restricts_programs() {
            return Err(format!(
                "argv0 cannot be set on '{id}': it has a command_whitelist, and a program may choose what it does \
                 by the name it is called (a multi-call program such as busybox)"
            ));
        }
        Ok(attrs)
    }

    /// For a remote executor, an error naming the first of `options` (the
    /// attributes of attrs.rs, which apply where a process starts).
    pub fn refuse_remote(&self, options: &[&str]) -> Result<(), String> {
        let (Some(target), Some(name)) = (&self.remote, options.first()) else { return Ok(()) };
        let instead = match target {
            Target::Container(_) => ": the container's limits and user are its resource's (memory_limit, pids_limit, cpu_quota, user)",
            Target::Ssh(_) => ": the remote command is started by the remote host",
        };
        Err(format!("{name} is not available for remote resource '{}'{instead}", self.id))
    }

    /// Check a command and its options against this executor and build
    /// what starts it: the spawn request, the remote half (exec.ssh) and
    /// the read-ahead limit.
    pub fn prepare(&self, command: CommandSpec, opts: ExecOptions) -> Result<Prepared, String> {
        if self.released {
            return Err(format!("executor '{}' has been released", self.id));
        }
        let policy = &self.config.policy;
        let wl = &policy.whitelist;
        if !wl.is_empty() && !wl.iter().any(|c| *c == command.whitelist_key()) {
            return Err(format!("command '{}' is not in the command_whitelist of '{}'", command.describe(), self.id));
        }
        if let Some(env) = &opts.env {
            policy.check_env(env, &self.id)?;
        }
        if opts.stdout == Stdio::Stdout {
            return Err("stdout cannot be set to \"stdout\"".into());
        }
        if opts.detach && self.remote.is_some() {
            return Err(format!("detach is not available for remote resource '{}'", self.id));
        }
        if opts.pty.is_some() {
            if matches!(self.remote, Some(Target::Ssh(_))) {
                return Err(format!("pty is not available for remote resource '{}'", self.id));
            }
            if [opts.stdin, opts.stdout, opts.stderr].iter().any(|m| *m != Stdio::Pipe) {
                return Err("pty replaces stdin, stdout and stderr: leave those options unset".into());
            }
            if opts.detach {
                // Closing the terminal's master (with the handle) hangs up its
                // session: a detached child would be ended after all.
                return Err("detach and pty cannot be combined: a detached child must outlive its handle, \
                            and the terminal ends with the handle"
                    .into());
            }
        }
        self.check_restricted_options(&opts)?;
        let attrs = self.check_attrs(&opts)?;
        let caller_dir = match &opts.work_dir {
            Some(d) if self.remote.is_none() => Some(policy.check_work_dir(d, &self.id)?),
            // A container's paths are its own: checked by name.
            Some(d) if matches!(self.remote, Some(Target::Container(_))) => {
                Some(container::check_work_dir(d, policy.work_dir_within.as_deref(), &self.id)?)
            }
            Some(d) if policy.work_dir_within.is_some() => {
                return Err(format!(
                    "work_dir '{}' cannot be checked against the work_dir_within of remote resource '{}'",
                    command::shown_path(d),
                    self.id
                ))
            }
            other => other.clone(),
        };
        let work_dir = caller_dir.or_else(|| self.config.default_work_dir.clone());
        let group = own_group(opts.process_group, opts.timed || matches!(command, CommandSpec::Shell(_)), opts.stdin);
        let mut redirect = opts.redirect.clone();
        for (i, r) in redirect.iter_mut().enumerate() {
            if let Some(Redirect::Path { path, within, .. }) = r {
                let local_dir = if self.remote.is_some() { None } else { work_dir.as_deref() };
                *within = policy.check_redirect(STREAMS[i], path, local_dir, &self.id)?;
            }
        }
        // (The `fds` of a remote command were refused by check_attrs.)
        let mut fds = opts.fds.clone();
        for f in fds.iter_mut() {
            if let Redirect::Path { path, within, .. } = &mut f.source {
                *within = policy.check_redirect(&format!("fds[{}]", f.target), path, work_dir.as_deref(), &self.id)?;
            }
        }
        // Remote commands always start from the remote login environment.
        let inherit = opts.inherit_env.unwrap_or(self.config.inherit_env) && self.remote.is_none();
        let env = command::merge_env(inherit, self.config.default_env.as_deref(), opts.env.as_deref());
        if let Some(target) = &self.remote {
            let stdio = [opts.stdin, opts.stdout, opts.stderr];
            let (mut req, remote) = target.prepare(&command, work_dir.as_deref(), env.as_deref(), stdio, opts.pty)?;
            // The local client leads its own group so that a group-wide
            // signal there never reaches us; the remote side is always a
            // group (a container's is all of the container).
            req.process_group = group;
            req.redirect = redirect;
            return Ok((req, Some(remote), opts.buffer_limit));
        }
        // A whitelisted program is found with the resource's own PATH (its
        // default_env's, else the library's default), never the caller's.
        let program = match (&command, policy.restricts_programs()) {
            (CommandSpec::Argv(args), true) => {
                let path = command::child_path(Some(self.config.default_env.as_deref().unwrap_or(&[])));
                Some(policy.resolve_program(&args[0], &path, self.config.default_work_dir.as_deref(), &self.id)?)
            }
            _ => None,
        };
        let mut req = SpawnRequest::new(command);
        req.program = program;
        req.env = env;
        req.work_dir = work_dir;
        req.stdin = opts.stdin;
        req.stdout = opts.stdout;
        req.stderr = opts.stderr;
        // A detached child leads a session (and so a group) of its own, which
        // the library never ends: no group record that state end would kill.
        req.process_group = group && !opts.detach;
        req.new_session = opts.detach || opts.pty.is_some();
        req.detach = opts.detach;
        req.redirect = redirect;
        req.attrs = attrs;
        req.fds = fds;
        req.argv0 = opts.argv0;
        if opts.pty.is_some() {
            req.pty = opts.pty;
            req.stdin = Stdio::Pty;
            req.stdout = Stdio::Pty;
            req.stderr = Stdio::Pty;
        }
        Ok((req, None, opts.buffer_limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_means_a_group_of_its_own_unless_asked_otherwise() {
        assert!(own_group(None, true, Stdio::Pipe));
        assert!(!own_group(Some(false), true, Stdio::Pipe));
        assert!(own_group(Some(true), false, Stdio::Pipe));
        assert!(!own_group(None, false, Stdio::Pipe));
        // Reading our terminal, it stays in the terminal's group.
        assert_eq!(own_group(None, true, Stdio::Inherit), !sys::is_tty(0));
    }

    #[test]
    fn process_native_is_always_there() {
        let r = Registry::new();
        assert_eq!(r.kind(NATIVE_ID), Some(NATIVE_KIND));
        assert!(r.acquire(NATIVE_ID).is_ok());
    }

    #[test]
    fn unknown_and_foreign_resources_are_refused_by_name() {
        let mut r = Registry::new();
        let e = r.acquire("nope:x").err().unwrap();
        assert!(e.contains("'nope:x' does not exist"), "{e}");
        r.define_other("db:main", "sql.postgres").unwrap();
        let e = r.acquire("db:main").err().unwrap();
        assert!(e.contains("not a process executor"), "{e}");
    }

    #[test]
    fn ids_must_be_namespaced_and_unique() {
        let mut r = Registry::new();
        assert!(r.define_native("plain", ExecutorConfig::default()).is_err());
        assert!(r.define_native(":x", ExecutorConfig::default()).is_err());
        r.define_native("a:b", ExecutorConfig::default()).unwrap();
        assert!(r.define_native("a:b", ExecutorConfig::default()).unwrap_err().contains("already defined"));
    }

    #[test]
    fn missing_default_work_dir_fails_acquisition() {
        let mut r = Registry::new();
        let cfg = ExecutorConfig { default_work_dir: Some("/no/such/dir".into()), ..Default::default() };
        r.define_native("x:y", cfg).unwrap();
        let e = r.acquire("x:y").err().unwrap();
        assert!(e.contains("/no/such/dir") && e.contains("No such file"), "{e}");
    }

    #[test]
    fn whitelist_compares_whole_commands() {
        let mut r = Registry::new();
        let cfg = ExecutorConfig {
            policy: Policy { whitelist: vec!["echo hi".into(), "ls -l".into()], ..Default::default() },
            ..Default::default()
        };
        // (entries are bytes: any Lua string)
        r.define_native("w:l", cfg).unwrap();
        let ex = r.acquire("w:l").unwrap();
        assert!(ex.prepare(CommandSpec::Shell("echo hi".into()), ExecOptions::default()).is_ok());
        assert!(ex.prepare(CommandSpec::Argv(vec!["ls".into(), "-l".into()]), ExecOptions::default()).is_ok());
        let e = ex.prepare(CommandSpec::Shell("echo hi; rm x".into()), ExecOptions::default()).err().unwrap();
        assert!(e.contains("command_whitelist"), "{e}");
    }

    #[test]
    fn released_executors_refuse_new_processes() {
        let r = Registry::new();
        let mut ex = r.acquire(NATIVE_ID).unwrap();
        ex.release();
        ex.release();
        assert!(ex.prepare(CommandSpec::Shell("true".into()), ExecOptions::default()).is_err());
    }

    #[test]
    fn env_is_default_env_overlaid_with_options() {
        let mut r = Registry::new();
        let cfg = ExecutorConfig {
            default_env: Some(Env::new("default_env", vec![("A".into(), "1".into()), ("B".into(), "2".into())]).unwrap()),
            ..Default::default()
        };
        r.define_native("e:v", cfg).unwrap();
        let ex = r.acquire("e:v").unwrap();
        let opts = ExecOptions { env: Some(Env::new("env", vec![("B".into(), "3".into())]).unwrap()), ..Default::default() };
        let (req, _, _) = ex.prepare(CommandSpec::Shell("env".into()), opts).unwrap();
        assert_eq!(req.env.unwrap(), vec![("A".into(), "1".into()), ("B".into(), "3".into())]);
    }
}
