//! Starting a child: what it must look like (`SpawnRequest`), its three
//! standard streams (`stdio`), and the two ways it starts: `posix_spawn`
//! (`posix`, the fast path) and `fork` + `execve` (`fork`, where glibc
//! lacks the extensions the fast path needs), which share one prepared
//! plan of the child (`plan`).
//!
//! In the child, before exec, on either path:
//! - every signal goes back to its default disposition and the mask is
//!   emptied (an interpreter that ignores SIGPIPE must not pass that on);
//! - the pipe ends are moved onto 0, 1 and 2 and every descriptor from 3 up is
//!   closed, so nothing of the parent, nor another child's pipes, leaks in,
//!   even descriptors the host opened without CLOEXEC (but the `fds` the
//!   request hands it).
//!
//! A request with attributes posix_spawn cannot set (attrs.rs: limits,
//! identity, umask, niceness, death with the parent, `fds`) starts on the
//! fork path; every other keeps the fast path.

pub mod attrs;
mod fork;
mod plan;
mod posix;
mod stdio;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::os::fd::OwnedFd;

use crate::core::command::{self, Bytes, CommandSpec};
use crate::core::error::Error;
use crate::core::os::sys;
use attrs::{Attrs, ChildExtra, PassedFd, Step};
use plan::ChildPlan;
use stdio::StdioPipes;

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Which way children start here: "posix_spawn" or "fork" (the fallback).
pub fn method() -> &'static str {
    if posix::available() {
        "posix_spawn"
    } else {
        "fork"
    }
}

/// Where one of the child's standard streams goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// A pipe to the parent (the default).
    Pipe,
    /// `/dev/null`.
    Null,
    /// The parent's own descriptor.
    Inherit,
    /// stderr only: the same pipe as stdout, so the two interleave in order.
    Stdout,
    /// A Unix socket pair instead of a pipe (opt-in): faster for bulk data
    /// (no pipe lock shared by both sides, and no SIGPIPE games: sends use
    /// MSG_NOSIGNAL), but a child cannot open `/dev/stdin` or `/dev/stdout`
    /// on it (ENXIO), as with libuv's and Node's child stdio.
    Socket,
    /// A file or another process's pipe: `SpawnRequest::redirect` says which.
    File,
    /// All three are a new pseudo-terminal (`SpawnRequest::pty`).
    Pty,
}

/// Where a `Stdio::File` stream goes or comes from.
#[derive(Debug, Clone)]
pub enum Redirect {
    /// A descriptor given to the library (a Lua file's, or the read end of
    /// another child's output pipe, for pipelines). Shared: a request may
    /// be cloned; the child gets a duplicate.
    Fd(Arc<OwnedFd>),
    /// A path the library opens when the child starts: for reading (stdin),
    /// else for writing, created if missing, truncated unless `append`.
    /// `within`: a restricted executor's rule (see policy.rs).
    Path { path: PathBuf, append: bool, within: Option<Within> },
}

/// Where a restricted executor lets a path redirection lead: the path,
/// made relative to `root`, is opened beneath it (os/open.rs).
#[derive(Debug, Clone)]
pub struct Within {
    pub root: PathBuf,
    pub rel: PathBuf,
    /// The rule as messages name it ("the work_dir_within of 'id' (/srv)").
    pub rule: String,
}

impl Stdio {
    /// The option value that selects this mode, as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Stdio::Pipe => "pipe",
            Stdio::Null => "null",
            Stdio::Inherit => "inherit",
            Stdio::Stdout => "stdout",
            Stdio::Socket => "socket",
            Stdio::File => "file",
            Stdio::Pty => "pty",
        }
    }

    /// The mode an option value names (`stdout` only for stderr).
    pub fn parse(value: &str, stream: &str) -> Option<Stdio> {
        Self::named(stream).find(|m| m.name() == value)
    }

    /// The modes an option value may name for `stream`, in the order
    /// messages list them (`stdout` only for stderr).
    pub fn named(stream: &str) -> impl Iterator<Item = Stdio> + '_ {
        [Stdio::Pipe, Stdio::Socket, Stdio::Null, Stdio::Inherit, Stdio::Stdout]
            .into_iter()
            .filter(move |m| *m != Stdio::Stdout || stream == "stderr")
    }
}

/// Everything needed to start one child.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    pub command: CommandSpec,
    /// The program to execute, already resolved (a restricted executor
    /// resolves it its own way); `None`: found from the command.
    pub program: Option<PathBuf>,
    /// `None` inherits the parent's environment.
    pub env: Option<Vec<(Bytes, Bytes)>>,
    pub work_dir: Option<PathBuf>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// Start the child as the leader of a new process group.
    pub process_group: bool,
    /// Start the child in a new session (`detach`, and always with a pty).
    pub new_session: bool,
    /// Never ended by the library, only reaped (`detach`; see children.rs).
    pub detach: bool,
    /// stdin, stdout and stderr are a new pseudo-terminal of this many
    /// rows and columns, the child's controlling terminal.
    pub pty: Option<(u16, u16)>,
    /// For each of stdin, stdout, stderr set to `Stdio::File`: the file.
    pub redirect: [Option<Redirect>; 3],
    /// Limits, identity, umask, niceness, death with the parent (attrs.rs).
    pub attrs: Attrs,
    /// Descriptors beyond 0-2 handed to the child at their numbers.
    pub fds: Vec<PassedFd>,
    /// The child's argv[0], when not the command's own.
    pub argv0: Option<Bytes>,
}

impl SpawnRequest {
    pub fn new(command: CommandSpec) -> Self {
        SpawnRequest {
            command,
            program: None,
            env: None,
            work_dir: None,
            stdin: Stdio::Pipe,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
            process_group: false,
            new_session: false,
            detach: false,
            pty: None,
            redirect: [None, None, None],
            attrs: Attrs::default(),
            fds: Vec::new(),
            argv0: None,
        }
    }

    /// Whether the child must start on the fork path (see attrs.rs).
    pub fn needs_fork(&self) -> bool {
        !self.fds.is_empty() || self.attrs.needs_fork()
    }
}

/// A started child: its pid and the parent's (nonblocking) pipe ends.
#[derive(Debug)]
pub struct Spawned {
    pub pid: libc::pid_t,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The pseudo-terminal's master (for its window size), with `pty`.
    pub pty: Option<OwnedFd>,
}

/// Start the child. On error nothing is left behind: no process, and every
/// descriptor opened here is closed again when its `OwnedFd` drops. A step
/// of the child's preparation that failed, or its exec, is an OS error
/// with the errno.
pub fn spawn(req: &SpawnRequest) -> Result<Spawned, Error> {
    let what = req.command.describe();

    if let Some(dir) = &req.work_dir {
        command::check_dir("work_dir", dir)?;
    }

    let argv = req.command.argv();
    let program = match (&req.program, &req.command) {
        (Some(p), _) => p.clone(),
        // The shell is ours to name: /bin/sh, which POSIX systems have.
        (None, CommandSpec::Shell(_)) => PathBuf::from(&argv[0]),
        (None, _) => command::resolve_program(&argv[0], &command::child_path(req.env.as_deref()), req.work_dir.as_deref())?,
    };

    let cstr = |s: &[u8], what: &str| CString::new(s).map_err(|_| format!("{what} contains a NUL byte"));
    let c_program = cstr(program.as_os_str().as_bytes(), "program")?;
    let mut c_argv: Vec<CString> = argv.iter().map(|a| cstr(a.as_bytes(), "argument")).collect::<Result<_, _>>()?;
    if let Some(a0) = &req.argv0 {
        // (The program was found by the command's own name, above.)
        c_argv[0] = cstr(a0.as_bytes(), "argv0")?;
    }
    let c_env: Option<Vec<CString>> = match &req.env {
        Some(vars) => Some(
            vars.iter()
                .map(|(k, v)| cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat(), "environment"))
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    let c_dir = match &req.work_dir {
        Some(d) => Some(cstr(d.as_os_str().as_bytes(), "work_dir")?),
        None => None,
    };

    let fail = |e: io::Error, doing: &str| format!("{doing} for '{what}': {}", sys::describe(&e));
    let stdio = StdioPipes::open(req, &what)?;
    let extra = match req.needs_fork() {
        true => {
            let open = |name: &str, read, path: &std::path::Path, append, within: Option<&Within>| {
                stdio::open_named(name, read, path, append, within, req.attrs.umask)
            };
            Some(ChildExtra::prepare(&req.attrs, &req.fds, open)?)
        }
        false => None,
    };
    let pty = match req.pty {
        Some((rows, cols)) => Some(sys::open_pty(rows, cols).map_err(|e| fail(e, "cannot open a pseudo-terminal"))?),
        None => None,
    };

    let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let env_ptrs: Option<Vec<*const libc::c_char>> = c_env.as_ref().map(|vars| {
        let mut v: Vec<_> = vars.iter().map(|c| c.as_ptr()).collect();
        v.push(std::ptr::null());
        v
    });

    let envp = match &env_ptrs {
        Some(v) => v.as_ptr(),
        // SAFETY: `environ` is the process's environment; only its value
        // (the array's address) is read here.
        None => unsafe { environ },
    };
    let plan = ChildPlan {
        program: &c_program,
        argv: argv_ptrs.as_ptr(),
        envp,
        dups: stdio.child_ends(),
        pty: pty.as_ref().map(|(_, p)| p.as_c_str()),
        dir: c_dir.as_deref(),
        process_group: req.process_group,
        new_session: req.new_session || pty.is_some(),
        extra: extra.as_ref(),
    };
    // posix_spawn reports what fails (exec or chdir) as an errno alone.
    let fast = match extra {
        None => posix::spawn(&plan),
        Some(_) => None,
    };
    let started = match fast {
        Some(r) => r.map_err(|e| fail(e, "posix_spawn setup"))?.map_err(|errno| attrs::ChildFailed { step: Step::Exec, arg: 0, errno }),
        None => fork::spawn(&plan).map_err(|e| fail(e, "fork"))?,
    };
    let pid = match started {
        Ok(pid) => pid,
        Err(f) => {
            let reason = sys::strerror(f.errno);
            let message = match f.step {
                Step::Exec | Step::Dir => {
                    // (The directory was there a moment ago: see if it still is.)
                    let gone = req.work_dir.as_deref().and_then(|d| command::check_dir("work_dir", d).err());
                    match gone {
                        Some(e) if f.errno == libc::ENOENT => return Err(Error::Other(e)),
                        _ if f.step == Step::Dir => format!("cannot start '{what}': {}: {reason}", f.step.describe(f.arg, &req.attrs)),
                        _ => format!("cannot run '{}': {reason}", command::shown_path(&program)),
                    }
                }
                step => format!("cannot start '{what}': {}: {reason}", step.describe(f.arg, &req.attrs)),
            };
            return Err(Error::Os { message, errno: f.errno });
        }
    };
    // The child ends close here, in the parent, as `stdio` drops.
    let mut spawned = stdio.into_spawned(pid);
    if let Some((master, _)) = pty {
        // One open terminal, three descriptors: read (stdout), write (stdin)
        // and the one kept for the window size.
        let dup = |f: &OwnedFd| f.try_clone().map_err(|e| fail(e, "cannot duplicate the pseudo-terminal"));
        spawned.stdout = Some(dup(&master)?);
        spawned.stdin = Some(dup(&master)?);
        spawned.pty = Some(master);
    }
    Ok(spawned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The child's descriptors as the parent sees them: fd -> target.
    fn fds_of(pid: libc::pid_t) -> Vec<(String, String)> {
        let mut fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), std::fs::read_link(e.path()).unwrap().display().to_string())
            })
            .collect();
        fds.sort();
        fds
    }

    #[test]
    fn three_null_streams_are_dev_null_and_the_child_has_nothing_else() {
        let mut req = SpawnRequest::new(CommandSpec::Argv(vec!["sleep".into(), "5".into()]));
        (req.stdin, req.stdout, req.stderr) = (Stdio::Null, Stdio::Null, Stdio::Null);
        let s = spawn(&req).unwrap();
        assert!(s.stdin.is_none() && s.stdout.is_none() && s.stderr.is_none());
        // The exec has happened once posix_spawn returned (vfork); the fork
        // path reports exec failures through a pipe that closes at exec.
        let fds = fds_of(s.pid);
        sys::kill(s.pid, libc::SIGKILL).unwrap();
        // SAFETY: waitpid on our own child, with a valid status pointer.
        unsafe { libc::waitpid(s.pid, &mut 0, 0) };
        let null = "/dev/null".to_string();
        assert_eq!(fds, vec![("0".into(), null.clone()), ("1".into(), null.clone()), ("2".into(), null)]);
    }
}
