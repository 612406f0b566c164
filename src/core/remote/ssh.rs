//! Remote executors through the system's OpenSSH client.
//!
//! A remote process is a local `ssh` child whose remote command is a small
//! POSIX `sh` wrapper (see `wrapper`). The wrapper
//! - records its pid, which is the remote process group (sshd starts every
//!   session with `setsid`, and the login shell `exec`s the wrapper), in a
//!   file named by a random token, so that signals can reach the group later;
//! - applies `work_dir` and `env` on the remote side;
//! - runs the command as a foreground child and survives the signals we send
//!   to the group, so that a command killed by signal N still reports 128+N
//!   (ssh itself would report 255 for it).
//!
//! Killing the local client does not end the remote command (sshd does not
//! signal a session without a terminal), so every signal, `close` and
//! timeout is delivered by a second, short `ssh` through the same
//! multiplexed connection: `kill -s SIG -- -<group>`.
//!
//! ssh's own diagnostics go to a per-process log file (`-E`), never into the
//! command's stderr: exit status 255 with a non-empty log is a connection
//! failure, with an empty log it is the remote command's own 255.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

use once_cell::sync::Lazy;

use crate::core::os::children::{self, ExitStatus, Owner};
use crate::core::command::quote;
use crate::core::os::sys::signal_name;
use crate::core::command::{Bytes, CommandSpec};
use crate::core::os::spawn::{self, SpawnRequest, Stdio};

/// Where to connect and how: the `exec.ssh` resource's connection fields.
#[derive(Debug, Clone, Default)]
pub struct SshTarget {
    pub host: Bytes,
    pub port: Option<std::num::NonZeroU16>,
    pub user: Option<Bytes>,
    pub identity_file: Option<Bytes>,
    pub known_hosts_file: Option<Bytes>,
    /// `ssh -F`: a client configuration file instead of `~/.ssh/config`.
    pub config_file: Option<Bytes>,
    /// Extra `-o Key=Value` options, in order.
    pub ssh_options: Vec<(Bytes, Bytes)>,
    /// Share one connection (ControlMaster) between all processes.
    pub multiplex: bool,
    /// The ssh program (default `ssh`, looked up in PATH).
    pub program: Option<Bytes>,
}

impl SshTarget {
    pub fn validate(&self) -> Result<(), String> {
        let host = self.host.as_bytes();
        if host.is_empty() {
            return Err("host must not be empty".into());
        }
        if host[0] == b'-' || host.iter().any(|b| b.is_ascii_whitespace() || *b == 0) {
            return Err(format!("host '{}' is not a host name", self.host.to_string_lossy()));
        }
        if host.contains(&b'@') {
            return Err(format!(
                "host '{}' contains '@': give the user name as the field user",
                self.host.to_string_lossy()
            ));
        }
        if let Some(u) = &self.user {
            let u = u.as_bytes();
            if u.is_empty() || u[0] == b'-' || u.iter().any(|b| b.is_ascii_whitespace() || *b == 0 || *b == b'@') {
                return Err(format!("user '{}' is not a user name", String::from_utf8_lossy(u)));
            }
        }
        for (k, v) in &self.ssh_options {
            let k = k.as_bytes();
            if k.is_empty() || !k.iter().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("ssh_options: '{}' is not an ssh option name", String::from_utf8_lossy(k)));
            }
            if v.as_bytes().iter().any(|b| *b == 0 || *b == b'\n') {
                return Err(format!("ssh_options: value of '{}' contains a NUL or newline", String::from_utf8_lossy(k)));
            }
        }
        Ok(())
    }

    /// `user@host:port` for messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.user {
            s.push_str(&u.to_string_lossy());
            s.push('@');
        }
        s.push_str(&self.host.to_string_lossy());
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }
}

/// The per-process private directory for control sockets and ssh logs,
/// made on first use (mode 0700) and removed at exit.
static SCRATCH: Lazy<Mutex<Option<(PathBuf, libc::pid_t)>>> = Lazy::new(|| Mutex::new(None));

pub(crate) fn scratch_dir() -> Result<PathBuf, String> {
    let mut d = SCRATCH.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((p, _)) = d.as_ref() {
        return Ok(p.clone());
    }
    // Control socket paths must fit in sockaddr_un (108 bytes): prefer a
    // short base even when TMPDIR is long.
    // ssh expands '%' in ControlPath and splits its value at blanks, so a
    // TMPDIR with such characters (or quotes) is not used either.
    let mut base = std::env::temp_dir();
    let plain = base.as_os_str().as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(b));
    if base.as_os_str().len() > 60 || !plain || !base.is_absolute() {
        base = PathBuf::from("/tmp");
    }
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    for _ in 0..100 {
        let p = base.join(format!("lua-exec-{pid}-{:08x}", random_u64() as u32));
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: `c` is a NUL-terminated path that lives for the call.
        if unsafe { libc::mkdir(c.as_ptr(), 0o700) } == 0 {
            *d = Some((p.clone(), pid));
            // SAFETY: registers a plain extern "C" function that never unwinds.
            unsafe { libc::atexit(remove_scratch_dir) };
            return Ok(p);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(format!("cannot create a directory in '{}': {}", base.display(), crate::core::os::sys::describe(&e)));
        }
    }
    Err(format!("cannot create a directory in '{}'", base.display()))
}

extern "C" fn remove_scratch_dir() {
    let _ = std::panic::catch_unwind(|| {
        // Whichever of the exit handlers runs first, remote processes are
        // stopped (through the control sockets here) before the files go.
        children::kill_all();
        // A forked copy of the host inherits this handler: only the process
        // that made the directory removes it.
        let d = SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((d, creator)) = d {
            // SAFETY: getpid cannot fail.
            if creator == unsafe { libc::getpid() } {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    });
}

pub(crate) fn random_u64() -> u64 {
    let mut v = 0u64;
    // SAFETY: writes at most 8 bytes into a live u64.
    let n = unsafe { libc::getrandom((&mut v as *mut u64).cast(), 8, 0) };
    if n != 8 {
        // No getrandom: time and a counter still make names unique here.
        static C: AtomicU64 = AtomicU64::new(0);
        v = (crate::core::os::sys::monotonic_seconds().to_bits()) ^ C.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    }
    v
}

static NEXT_FILE: AtomicU64 = AtomicU64::new(1);

pub(crate) fn scratch_file(prefix: &str) -> Result<PathBuf, String> {
    Ok(scratch_dir()?.join(format!("{prefix}{}", NEXT_FILE.fetch_add(1, Ordering::Relaxed))))
}

/// What ssh wrote to its log, trimmed; empty if nothing (or no file).
fn read_log(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&text).trim().replace("\r\n", "\n").replace('\n', "; ")
}

/// The remote pid file of a process: `$1` is the token.
const PIDFILE: &str = "\"${TMPDIR:-/tmp}/lua-exec-$1\"";

/// What the remote side runs for one process, given its token as `$1`.
/// `command_line` is the command already quoted for sh.
pub(crate) fn wrapper(command_line: &[u8], work_dir: Option<&[u8]>, merge_stderr: bool) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(format!("f={PIDFILE}\n").as_bytes());
    // noclobber: never write through a file (or link) someone else made.
    s.extend_from_slice(b"(set -C; echo $$ >\"$f\") 2>/dev/null || { echo \"lua-exec: cannot create $f\" >&2; exit 125; }\n");
    // The wrapper's own messages (a shell reports "Terminated" for a child
    // killed by a signal) must not reach the command's stderr: keep that on
    // fd 3 for the command only.
    s.extend_from_slice(b"exec 3>&2 2>/dev/null\n");
    // Handlers (not SIG_IGN) so that the command still gets default actions.
    s.extend_from_slice(b"trap : HUP INT QUIT TERM USR1 USR2 ALRM\n");
    if let Some(dir) = work_dir {
        let q = quote(dir);
        s.extend_from_slice(b"cd -- ");
        s.extend_from_slice(&q);
        s.extend_from_slice(b" || { echo \"lua-exec: cannot change directory to ");
        // Inside double quotes: the single-quoted form would be literal
        // quotes, so name it by the variable-free text below instead.
        s.extend_from_slice(&dq_escape(dir));
        s.extend_from_slice(b": No such file or directory\" >&3; rm -f \"$f\"; exit 127; }\n");
    }
    // The command's stderr is set inside the child: a redirection on the
    // command itself would also be the wrapper's fd 2 while it waits.
    s.extend_from_slice(if merge_stderr {
        b"sh -c 'exec 2>&1 3>&-; exec \"$@\"' sh "
    } else {
        b"sh -c 'exec 2>&3 3>&-; exec \"$@\"' sh "
    });
    s.extend_from_slice(command_line);
    s.extend_from_slice(b"\n");
    s.extend_from_slice(b"s=$?\nrm -f \"$f\"\nexit $s\n");
    s
}

/// Escape for inclusion inside a double-quoted sh string.
fn dq_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        if matches!(b, b'"' | b'\\' | b'$' | b'`') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// A remote environment name must be a POSIX name (`[A-Za-z_][A-Za-z0-9_]*`):
/// anything else could be read by the remote `env` as an option.
pub fn check_env_name(name: &OsStr) -> Result<(), String> {
    let n = name.as_bytes();
    let ok = !n.is_empty()
        && (n[0].is_ascii_alphabetic() || n[0] == b'_')
        && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "env variable name '{}' is not a portable name ([A-Za-z_][A-Za-z0-9_]*), required on a remote host",
            name.to_string_lossy()
        ))
    }
}

/// The body of a `pid_script` that ends the group `$p`: SIGTERM (and SIGCONT
/// for a stopped group), SIGKILL after the same grace as
/// children::abandon's if the wrapper's pid file `$f` is still there, said
/// in the remote shell; SIGKILL at once when `force`.
pub(crate) fn stop_body(force: bool) -> String {
    if force {
        "kill -s KILL -- -$p; rm -f \"$f\"".to_string()
    } else {
        format!(
            "kill -s TERM -- -$p; kill -s CONT -- -$p; \
             (sleep {}; [ -e \"$f\" ] && kill -s KILL -- -$p; rm -f \"$f\") >/dev/null 2>&1 </dev/null &",
            crate::core::os::children::GRACE.as_secs_f64()
        )
    }
}

/// A remote script that runs `body` with `$p` set to the process group of
/// the wrapper with `token`, read from its pid file. The pid file lives in a
/// directory other users can write to, and the token is visible in `ps`, so
/// what it holds is checked before use: a number above 1 that names a
/// process of ours that leads its group and still runs our wrapper with this
/// token as its last argument. Anything else means there is nothing to do.
pub(crate) fn pid_script(token: &str, body: &str) -> Vec<u8> {
    let f = PIDFILE.replace("$1", token);
    format!(
        "f={f}; i=0; while [ ! -s \"$f\" ] && [ $i -lt 40 ]; do sleep 0.05 2>/dev/null || sleep 1; i=$((i+1)); done; \
         p=$(cat \"$f\" 2>/dev/null) || exit 0; \
         case $p in ''|*[!0-9]*) exit 0;; esac; [ \"$p\" -gt 1 ] || exit 0; \
         if [ -r /proc/$p/stat ]; then \
           [ -O /proc/$p ] || exit 0; \
           g=$(sed 's/.*) [A-Za-z] [0-9]* //; s/ .*//' /proc/$p/stat 2>/dev/null); [ \"$g\" = \"$p\" ] || exit 0; \
           case \"$(tr '\\000' ' ' </proc/$p/cmdline 2>/dev/null)\" in *' lua-exec {token} ') ;; *) exit 0;; esac; \
         else \
           set -- $(ps -o pgid= -o uid= -p \"$p\" 2>/dev/null); [ \"$1\" = \"$p\" ] && [ \"$2\" = \"$(id -u)\" ] || exit 0; \
           case \"$(ps -ww -o args= -p \"$p\" 2>/dev/null)\" in *' lua-exec {token}') ;; *) exit 0;; esac; \
         fi; {body}"
    )
    .into_bytes()
}

/// The command part of the wrapper: `env K=V ... sh -c 'cmd'` or
/// `env K=V ... 'prog' 'arg'...`. `env` runs the real program even where sh
/// has a builtin of that name, as a native argv command would.
pub(crate) fn command_line(command: &CommandSpec, env: Option<&[(Bytes, Bytes)]>) -> Result<Vec<u8>, String> {
    let mut s = Vec::new();
    let env = env.unwrap_or(&[]);
    let use_env = !env.is_empty() || matches!(command, CommandSpec::Argv(_));
    if use_env {
        // `--`: nothing after it is an option of env's, whatever it holds.
        s.extend_from_slice(b"env --");
        for (k, v) in env {
            check_env_name(k)?;
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            s.push(b' ');
            s.extend_from_slice(&quote(&kv));
        }
        s.push(b' ');
    }
    match command {
        CommandSpec::Shell(c) => {
            s.extend_from_slice(b"sh -c ");
            s.extend_from_slice(&quote(c.as_bytes()));
        }
        CommandSpec::Argv(args) => {
            let prog = args[0].as_bytes();
            if prog.contains(&b'=') || prog[0] == b'-' {
                return Err(format!(
                    "remote program name '{}' cannot start with '-' or contain '='",
                    String::from_utf8_lossy(prog)
                ));
            }
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    s.push(b' ');
                }
                s.extend_from_slice(&quote(a.as_bytes()));
            }
        }
    }
    Ok(s)
}

/// The string ssh hands to the remote login shell: run the wrapper in sh,
/// whatever the login shell is, with the token as `$1`.
fn remote_line(script: &[u8], token: &str) -> Vec<u8> {
    let mut s = b"exec sh -c ".to_vec();
    s.extend_from_slice(&quote(script));
    s.extend_from_slice(format!(" lua-exec {token}").as_bytes());
    s
}

/// A connection to one remote host: the ssh options and, when multiplexing,
/// the master process that owns the shared connection.
pub struct Connection {
    target: SshTarget,
    control: Option<PathBuf>,
    master: Mutex<Master>,
}

enum Master {
    Down,
    Starting { pid: libc::pid_t, log: PathBuf },
    Up { pid: libc::pid_t },
}

/// Connection progress for `start()`.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Connecting,
}

impl Connection {
    pub fn new(target: SshTarget) -> Result<Connection, String> {
        target.validate()?;
        let control = if target.multiplex { Some(scratch_file("c")?) } else { None };
        Ok(Connection { target, control, master: Mutex::new(Master::Down) })
    }

    /// ssh with every option common to all our uses, up to the destination.
    fn ssh_argv(&self, log: &OsStr, extra: &[&str]) -> Vec<Bytes> {
        let t = &self.target;
        let mut a: Vec<Bytes> = vec![t.program.clone().unwrap_or_else(|| "ssh".into())];
        if let Some(f) = &t.config_file {
            a.push("-F".into());
            a.push(f.clone());
        }
        let o = |a: &mut Vec<Bytes>, k: &str, v: &OsStr| {
            let mut kv = Bytes::from(format!("{k}="));
            kv.push(v);
            a.push("-o".into());
            a.push(kv);
        };
        // The options our behaviour depends on come first: for ssh the first
        // value given wins.
        a.push("-T".into());
        a.push("-E".into());
        a.push(log.into());
        o(&mut a, "BatchMode", OsStr::new("yes"));
        o(&mut a, "LogLevel", OsStr::new("ERROR"));
        for e in extra {
            let (k, v) = e.split_once('=').unwrap();
            o(&mut a, k, OsStr::new(v));
        }
        match &self.control {
            Some(c) => o(&mut a, "ControlPath", c.as_os_str()),
            None => o(&mut a, "ControlPath", OsStr::new("none")),
        }
        if let Some(p) = t.port {
            a.push("-p".into());
            a.push(p.to_string().into());
        }
        if let Some(u) = &t.user {
            a.push("-l".into());
            a.push(u.clone());
        }
        if let Some(i) = &t.identity_file {
            a.push("-i".into());
            a.push(i.clone());
            o(&mut a, "IdentitiesOnly", OsStr::new("yes"));
        }
        if let Some(k) = &t.known_hosts_file {
            o(&mut a, "UserKnownHostsFile", k);
            o(&mut a, "StrictHostKeyChecking", OsStr::new("yes"));
        }
        for (k, v) in &t.ssh_options {
            o(&mut a, &k.to_string_lossy(), v);
        }
        // Defaults the user's options may override.
        o(&mut a, "ConnectTimeout", OsStr::new("10"));
        a.push("--".into());
        a.push(t.host.clone());
        a
    }

    /// A short ssh that runs `script` remotely and exits: signals and stops.
    fn side_argv(&self, script: &[u8]) -> Vec<Bytes> {
        let mut a = self.ssh_argv(OsStr::new("/dev/null"), &["ControlMaster=no"]);
        a.push(Bytes::from_vec(script.to_vec()));
        a
    }

    /// Bring the shared connection up (when multiplexing). Called by
    /// `start()` until it returns `Ready`; an error names the connection.
    pub fn connect(&self, owner: Owner) -> Result<Readiness, String> {
        let Some(control) = &self.control else { return Ok(Readiness::Ready) };
        let mut m = self.master.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*m {
                Master::Down => {
                    let log = scratch_file("m")?;
                    let _ = std::fs::remove_file(control);
                    let mut argv =
                        self.ssh_argv(log.as_os_str(), &["ControlMaster=yes", "ControlPersist=no"]);
                    argv.insert(1, "-N".into());
                    let mut req = SpawnRequest::new(CommandSpec::Argv(argv));
                    req.stdin = Stdio::Null;
                    req.stdout = Stdio::Null;
                    req.stderr = Stdio::Null;
                    let spawned = spawn::spawn(&req)
                        .map_err(|e| format!("cannot connect to {}: {e}", self.target.describe()))?;
                    children::register(spawned.pid, owner, false, None);
                    *m = Master::Starting { pid: spawned.pid, log };
                    return Ok(Readiness::Connecting);
                }
                Master::Starting { pid, log } => {
                    // The master makes its socket only once it is logged in.
                    if std::fs::symlink_metadata(control).is_ok() {
                        let _ = std::fs::remove_file(log);
                        *m = Master::Up { pid: *pid };
                        return Ok(Readiness::Ready);
                    }
                    match children::try_reap(*pid) {
                        Ok(None) => return Ok(Readiness::Connecting),
                        Ok(Some(status)) => {
                            let code = status.code();
                            let why = read_log(log);
                            let _ = std::fs::remove_file(log);
                            *m = Master::Down;
                            let why = if why.is_empty() { format!("ssh exited with code {code}") } else { why };
                            return Err(format!("cannot connect to {}: {why}", self.target.describe()));
                        }
                        Err(e) => {
                            *m = Master::Down;
                            return Err(format!("cannot connect to {}: {e}", self.target.describe()));
                        }
                    }
                }
                Master::Up { pid } => match children::try_reap(*pid) {
                    Ok(None) => return Ok(Readiness::Ready),
                    // The connection went away: make a new one.
                    _ => *m = Master::Down,
                },
            }
        }
    }

    /// Build the local `ssh` request for one remote process.
    pub fn prepare(
        self: &std::sync::Arc<Self>,
        command: &CommandSpec,
        work_dir: Option<&Path>,
        env: Option<&[(Bytes, Bytes)]>,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<(SpawnRequest, RemoteProcess), String> {
        let token = format!("{:016x}", random_u64());
        let log = scratch_file("l")?;
        let script = wrapper(
            &command_line(command, env)?,
            work_dir.map(|d| d.as_os_str().as_bytes()),
            stderr == Stdio::Stdout,
        );
        let mut argv = self.ssh_argv(log.as_os_str(), &["ControlMaster=no"]);
        argv.push(Bytes::from_vec(remote_line(&script, &token)));
        let mut req = SpawnRequest::new(CommandSpec::Argv(argv));
        req.stdin = stdin;
        req.stdout = stdout;
        // Merging happens remotely; locally ssh's stderr carries nothing
        // (its diagnostics go to the log), so it keeps the same shape.
        req.stderr = stderr;
        let remote = RemoteProcess {
            conn: self.clone(),
            token,
            log,
            last_signal: AtomicI32::new(0),
            shown: command.describe(),
        };
        Ok((req, remote))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The master is ended with its owner; its socket file may remain.
        if let Some(c) = &self.control {
            let _ = std::fs::remove_file(c);
        }
    }
}

/// The remote half of one process: how to signal it and how to read ssh's
/// exit status.
pub struct RemoteProcess {
    conn: std::sync::Arc<Connection>,
    token: String,
    log: PathBuf,
    last_signal: AtomicI32,
    shown: String,
}

impl RemoteProcess {
    pub fn connection(&self) -> &std::sync::Arc<Connection> {
        &self.conn
    }

    /// The command as shown in messages: `host: command`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.conn.target.describe(), self.shown)
    }

    /// A remote script that runs `body` with `$p` set to the process group.
    /// A command started a moment ago may not have written its pid file
    /// yet, so wait for it up to 2 s (a command that already ended has
    /// removed it: then there is nothing to do).
    fn with_pid(&self, body: &str) -> Vec<u8> {
        pid_script(&self.token, body)
    }

    /// The local command that delivers `sig` to the remote process group.
    pub fn signal_argv(&self, sig: i32) -> Vec<Bytes> {
        self.last_signal.store(sig, Ordering::Relaxed);
        let s = match signal_name(sig) {
            Some(n) => format!("-s {n}"),
            None => format!("-{sig}"),
        };
        // SIGKILL ends the wrapper too, before it can remove its pid file.
        let tidy = if sig == libc::SIGKILL { "; rm -f \"$f\"" } else { "" };
        self.conn.side_argv(&self.with_pid(&format!("kill {s} -- -$p{tidy}")))
    }

    /// The local command that ends the remote process group: SIGTERM (and
    /// SIGCONT for a stopped group), SIGKILL a second later if it is still
    /// there; SIGKILL at once when `force`. It returns at once: the remote
    /// shell finishes the job on its own.
    pub fn stop_argv(&self, force: bool) -> Vec<Bytes> {
        self.conn.side_argv(&self.with_pid(&stop_body(force)))
    }

    /// Turn the local ssh's exit code into the remote command's, or a
    /// connection error.
    pub fn interpret(&self, status: ExitStatus) -> Result<ExitStatus, String> {
        // What ssh reports is the remote command's exit code (a remote
        // shell's 128 + N for a signal cannot be told from an exit).
        if status.code() != 255 {
            return Ok(ExitStatus::exited(status.code()));
        }
        let why = read_log(&self.log);
        if !why.is_empty() {
            return Err(format!(
                "ssh connection to {} failed (the command's outcome is unknown): {why}",
                self.conn.target.describe()
            ));
        }
        // SIGKILL to the group ends the wrapper too; ssh reports 255.
        if self.last_signal.load(Ordering::Relaxed) == libc::SIGKILL {
            return Ok(ExitStatus::from_raw(libc::SIGKILL));
        }
        Ok(status)
    }
}

impl Drop for RemoteProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Run what the remote login shell would run, here, with sh.
    fn run_remote(command: &CommandSpec, dir: Option<&str>, env: &[(&str, &str)], merge: bool) -> (i32, Vec<u8>, Vec<u8>) {
        let env: Vec<(Bytes, Bytes)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let script = wrapper(&command_line(command, Some(&env)).unwrap(), dir.map(|d| d.as_bytes()), merge);
        let token = format!("test{:016x}", random_u64());
        let line = remote_line(&script, &token);
        let out = Command::new("sh").arg("-c").arg(OsStr::from_bytes(&line)).output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        assert!(!Path::new(&format!("/tmp/lua-exec-{token}")).exists(), "pid file left behind");
        (code, out.stdout, out.stderr)
    }

    #[test]
    fn the_remote_stop_checks_what_the_pid_file_holds() {
        let token = format!("test{:016x}", random_u64());
        let file = format!("/tmp/lua-exec-{token}");
        let run = |content: &str| {
            std::fs::write(&file, content).unwrap();
            let script = pid_script(&token, "echo KILL $p");
            let out = Command::new("sh").arg("-c").arg(OsStr::from_bytes(&script)).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        // Forged: not a number, -1, 1, an unrelated process (ours, or init).
        for forged in ["-1", "1", "0", "1 2", "$(id)", "", &std::process::id().to_string()] {
            assert_eq!(run(forged), "", "acted on a pid file holding {forged:?}");
        }
        // The real thing: a group leader whose last arguments are ours.
        let script = format!("exec sh -c 'sleep 5' lua-exec {token}");
        let mut leader = Command::new("setsid").arg("sh").arg("-c").arg(&script).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let pid = leader.id().to_string();
        assert_eq!(run(&pid), format!("KILL {pid}\n"));
        let _ = leader.kill();
        let _ = leader.wait();
        let _ = std::fs::remove_file(&file);
        // Names that env would read as options are refused.
        assert!(check_env_name(OsStr::new("--split-string")).is_err());
        assert!(check_env_name(OsStr::new("A-B")).is_err());
        assert!(check_env_name(OsStr::new("_OK9")).is_ok());
    }

    #[test]
    fn argv_round_trips_every_byte() {
        let weird: Vec<u8> = (1u8..=255).collect();
        let args = vec!["printf".into(), "%s|".into(), Bytes::from_vec(weird.clone()), "it's".into(), "$HOME".into()];
        let (code, out, _) = run_remote(&CommandSpec::Argv(args), None, &[], false);
        assert_eq!(code, 0);
        let mut want = weird;
        want.extend_from_slice(b"|it's|$HOME|");
        assert_eq!(out, want);
    }

    #[test]
    fn shell_commands_env_and_work_dir_apply() {
        let cmd = CommandSpec::Shell("pwd; printf '%s\\n' \"$FOO\"; echo err >&2; exit 7".into());
        let (code, out, err) = run_remote(&cmd, Some("/"), &[("FOO", "a b'c\"$x")], false);
        assert_eq!(code, 7);
        assert_eq!(out, b"/\na b'c\"$x\n");
        assert_eq!(err, b"err\n");
    }

    #[test]
    fn stderr_can_merge_into_stdout() {
        let (_, out, err) = run_remote(&CommandSpec::Shell("echo a; echo b >&2; echo c".into()), None, &[], true);
        assert_eq!(out, b"a\nb\nc\n");
        assert!(err.is_empty());
    }

    #[test]
    fn a_missing_work_dir_is_code_127_with_a_message() {
        let (code, _, err) = run_remote(&CommandSpec::Shell("true".into()), Some("/no/such dir"), &[], false);
        assert_eq!(code, 127);
        assert_eq!(String::from_utf8_lossy(&err), "lua-exec: cannot change directory to /no/such dir: No such file or directory\n");
    }

    #[test]
    fn a_command_killed_by_a_signal_reports_128_plus_n_quietly() {
        let (code, _, err) = run_remote(&CommandSpec::Shell("kill -s TERM $$".into()), None, &[], false);
        assert_eq!(code, 128 + libc::SIGTERM);
        assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    }

    #[test]
    fn argv_runs_the_program_not_a_shell_builtin() {
        // dash's builtin echo would turn \n into a newline; /bin/echo does not.
        let (_, out, _) = run_remote(&CommandSpec::Argv(vec!["echo".into(), "a\\nb".into()]), None, &[], false);
        assert_eq!(out, b"a\\nb\n");
        assert!(command_line(&CommandSpec::Argv(vec!["A=1".into()]), None).is_err());
    }

    #[test]
    fn targets_are_checked() {
        let ok = SshTarget { host: "example.org".into(), ..Default::default() };
        assert!(ok.validate().is_ok());
        for bad in ["", "-oProxyCommand=x", "a b", "deploy@10.0.0.5"] {
            assert!(SshTarget { host: bad.into(), ..Default::default() }.validate().is_err(), "{bad}");
        }
        let t = SshTarget { host: "h".into(), user: Some("-l".into()), ..Default::default() };
        assert!(t.validate().is_err());
        let t = SshTarget { host: "h".into(), ssh_options: vec![("Proxy Command".into(), "x".into())], ..Default::default() };
        assert!(t.validate().is_err());
    }

    #[test]
    fn quoting_survives_sh() {
        for s in ["", "a", "it's", "'", "''", "a\nb", "$(id)", "\\"] {
            let q = quote(s.as_bytes());
            let out = Command::new("sh").arg("-c").arg(OsStr::from_bytes(&[b"printf %s ", &q[..]].concat())).output().unwrap();
            assert_eq!(out.stdout, s.as_bytes());
        }
    }
}
