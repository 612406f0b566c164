//! Starting a child with `posix_spawn`.
//!
//! glibc's `posix_spawn` uses `clone(CLONE_VM | CLONE_VFORK)`, so starting a
//! child never copies the parent's page tables, however big the Lua heap is,
//! and it reports a failed `exec` (or `chdir`) as an error code instead of a
//! child that exits 127. In the child, before exec:
//! - every signal goes back to its default disposition and the mask is
//!   emptied (an interpreter that ignores SIGPIPE must not pass that on);
//! - the pipe ends are moved onto 0, 1 and 2 and every descriptor from 3 up is
//!   closed (`addclosefrom_np`), so nothing of the parent, nor another child's
//!   pipes, leaks in, even descriptors the host opened without CLOEXEC.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::core::command::{self, Bytes, CommandSpec};
use crate::core::os::child_plan::ChildPlan;
use crate::core::os::open;
use crate::core::os::sys;

extern "C" {
    static environ: *const *const libc::c_char;
}

type AddChdir = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;
type AddClosefrom = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, libc::c_int) -> libc::c_int;

/// glibc's `posix_spawn_file_actions_addchdir_np` (2.29) and
/// `addclosefrom_np` (2.34), looked up at run time as Rust std does with
/// its weak symbols: linking them would make the module fail to load on
/// older systems (Debian 11, Ubuntu 20.04, Amazon Linux 2) and on musl.
/// `None` where either is missing, or when the `LUA_EXEC_FORK_SPAWN` test
/// switch is set: then children start through `spawn_fork`.
struct SpawnExtensions {
    addchdir: AddChdir,
    addclosefrom: AddClosefrom,
}

static EXTENSIONS: once_cell::sync::Lazy<Option<SpawnExtensions>> = once_cell::sync::Lazy::new(|| {
    if std::env::var_os("LUA_EXEC_FORK_SPAWN").is_some() {
        return None;
    }
    // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names; a non-null
    // result is the address of the glibc function of that name, whose
    // signature is the one declared above.
    unsafe {
        let chdir = libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawn_file_actions_addchdir_np".as_ptr());
        let closefrom = libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawn_file_actions_addclosefrom_np".as_ptr());
        if chdir.is_null() || closefrom.is_null() {
            return None;
        }
        Some(SpawnExtensions {
            addchdir: std::mem::transmute::<*mut libc::c_void, AddChdir>(chdir),
            addclosefrom: std::mem::transmute::<*mut libc::c_void, AddClosefrom>(closefrom),
        })
    }
});

/// Which way children start here: "posix_spawn" or "fork" (the fallback).
pub fn method() -> &'static str {
    if EXTENSIONS.is_some() {
        "posix_spawn"
    } else {
        "fork"
    }
}

/// glibc >= 2.26: the child calls setsid() (not in every libc crate version).
const POSIX_SPAWN_SETSID: libc::c_int = 0x80;

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
        [Stdio::Pipe, Stdio::Null, Stdio::Inherit, Stdio::Socket, Stdio::Stdout]
            .into_iter()
            .find(|m| m.name() == value && (*m != Stdio::Stdout || stream == "stderr"))
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
        }
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

/// Start `plan` with posix_spawn: `Ok(Ok(pid))`, `Ok(Err(errno))` when the
/// child could not be started (exec or chdir failed), `Err` when the
/// spawn could not even be set up.
fn spawn_posix(plan: &ChildPlan, ext: &SpawnExtensions) -> io::Result<Result<libc::pid_t, libc::c_int>> {
    // SAFETY: every pointer handed to posix_spawn (program, argv, envp, file
    // actions, attributes) points into values that live until it returns;
    // argv and envp are NULL-terminated (ChildPlan).
    unsafe {
        let mut actions = FileActions::new()?;
        let mut attr = SpawnAttr::new()?;
        for &(target, fd) in &plan.dups {
            actions.dup2(target, fd)?;
        }
        if let Some(path) = plan.pty {
            // Opened after setsid() (glibc runs file actions after the
            // session is made), without O_NOCTTY: it becomes the
            // controlling terminal.
            actions.open(0, path, libc::O_RDWR)?;
            actions.dup2(1, 0)?;
            actions.dup2(2, 0)?;
        }
        check((ext.addclosefrom)(&mut actions.0, 3))?;
        if let Some(dir) = plan.dir {
            check((ext.addchdir)(&mut actions.0, dir.as_ptr()))?;
        }
        attr.reset_signals(plan.process_group, plan.new_session)?;
        let mut pid: libc::pid_t = 0;
        let rc = libc::posix_spawn(
            &mut pid,
            plan.program.as_ptr(),
            &actions.0,
            &attr.0,
            plan.argv as *const *mut libc::c_char,
            plan.envp as *const *mut libc::c_char,
        );
        Ok(if rc == 0 { Ok(pid) } else { Err(rc) })
    }
}

/// Start the child. On error nothing is left behind: no process, and every
/// descriptor opened here is closed again when its `OwnedFd` drops.
pub fn spawn(req: &SpawnRequest) -> Result<Spawned, String> {
    req.command.validate()?;
    let what = req.command.describe();

    if let Some(dir) = &req.work_dir {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("work_dir '{}': Not a directory", command::shown_path(dir))),
            Err(e) => return Err(format!("work_dir '{}': {}", command::shown_path(dir), sys::describe(&e))),
        }
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
    let c_argv: Vec<CString> = argv.iter().map(|a| cstr(a.as_bytes(), "argument")).collect::<Result<_, _>>()?;
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
    };
    let started = match &*EXTENSIONS {
        Some(ext) => spawn_posix(&plan, ext).map_err(|e| fail(e, "posix_spawn setup"))?,
        None => crate::core::os::spawn_fork::spawn(&plan).map_err(|e| fail(e, "fork"))?,
    };
    let pid = match started {
        Ok(pid) => pid,
        Err(rc) => {
            let reason = sys::strerror(rc);
            return Err(match &req.work_dir {
                Some(d) if rc == libc::ENOENT && !d.is_dir() => format!("work_dir '{}': {reason}", command::shown_path(d)),
                _ => format!("cannot run '{}': {reason}", command::shown_path(&program)),
            });
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

const STREAMS: [&str; 3] = ["stdin", "stdout", "stderr"];

/// Why the child's streams could not be set up: a path the caller named,
/// or the system (out of descriptors).
enum Opened {
    Path(String),
    Io(io::Error),
}

impl From<io::Error> for Opened {
    fn from(e: io::Error) -> Opened {
        Opened::Io(e)
    }
}

/// Open the file of stream `i` (`{ path = }`), beneath a restricted
/// executor's root if it has one; never blocking (see os/open.rs).
fn open_path(i: usize, path: &std::path::Path, append: bool, within: Option<&Within>) -> Result<OwnedFd, Opened> {
    let r = match within {
        Some(w) => open::open_beneath(&w.root, &w.rel, i == 0, append),
        None => open::open_for_child(path, i == 0, append),
    };
    r.map_err(|e| {
        let reason = match (within, e.raw_os_error()) {
            (Some(w), Some(libc::EXDEV | libc::ELOOP)) => format!("it leads outside {} (through a symlink or '..')", w.rule),
            (_, Some(libc::ENXIO)) => format!("{} (a FIFO that nobody reads)", sys::describe(&e)),
            _ => sys::describe(&e),
        };
        Opened::Path(format!("{}: cannot open '{}': {reason}", STREAMS[i], command::shown_path(path)))
    })
}

/// The pipes (or /dev/null, or files) for the three standard streams.
struct StdioPipes {
    /// (parent end, child end) per stream; `None` for inherit.
    ends: [Option<(Option<OwnedFd>, OwnedFd)>; 3],
}

impl StdioPipes {
    fn open(req: &SpawnRequest, what: &str) -> Result<StdioPipes, String> {
        Self::open_io(req).map_err(|e| match e {
            Opened::Path(msg) => msg,
            Opened::Io(e) => format!("cannot create pipes for '{what}': {}", sys::describe(&e)),
        })
    }

    fn open_io(req: &SpawnRequest) -> Result<StdioPipes, Opened> {
        let mut null: Option<RawFd> = None;
        let mut ends: [Option<(Option<OwnedFd>, OwnedFd)>; 3] = [None, None, None];
        for (i, mode) in [req.stdin, req.stdout, req.stderr].into_iter().enumerate() {
            ends[i] = match mode {
                Stdio::File => match &req.redirect[i] {
                    Some(Redirect::Fd(fd)) => Some((None, sys::above_stdio(fd.try_clone()?)?)),
                    Some(Redirect::Path { path, append, within }) => Some((None, open_path(i, path, *append, within.as_ref())?)),
                    None => return Err(Opened::Path(format!("{}: no file given", STREAMS[i]))),
                },
                Stdio::Inherit => None,
                Stdio::Pty => None, // the terminal is opened by the child itself (see spawn)
                Stdio::Stdout => None, // filled in below from stdout's child end
                Stdio::Null => match null {
                    // Opened once (above fd 2), then shared by duplicating.
                    None => {
                        let fd = sys::open_dev_null()?;
                        null = Some(fd.as_raw_fd());
                        Some((None, fd))
                    }
                    // SAFETY: `first` is the child end of an earlier stream,
                    // owned by `ends` until this function returns.
                    Some(first) => Some((None, sys::above_stdio(unsafe { BorrowedFd::borrow_raw(first) }.try_clone_to_owned()?)?)),
                },
                Stdio::Socket => {
                    let (parent, child) = sys::socketpair()?;
                    sys::set_nonblocking_fresh(parent.as_raw_fd(), libc::O_RDWR)?;
                    Some((Some(parent), child))
                }
                Stdio::Pipe => {
                    let (r, w) = sys::pipe()?;
                    let (parent, child) = if i == 0 { (w, r) } else { (r, w) };
                    let access = if i == 0 { libc::O_WRONLY } else { libc::O_RDONLY };
                    sys::set_nonblocking_fresh(parent.as_raw_fd(), access)?;
                    Some((Some(parent), child))
                }
            };
        }
        if req.stderr == Stdio::Stdout {
            ends[2] = match &ends[1] {
                Some((_, child)) => Some((None, child.try_clone()?)),
                // stdout inherited: stderr follows it to the parent's fd 1.
                // SAFETY: fd 1 is open (stdout is inherited, so it exists) for the duration of this borrow.
                None => Some((None, sys::above_stdio(unsafe { BorrowedFd::borrow_raw(1) }.try_clone_to_owned()?)?)),
            };
        }
        Ok(StdioPipes { ends })
    }

    fn child_ends(&self) -> Vec<(RawFd, RawFd)> {
        self.ends
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|(_, child)| (i as RawFd, child.as_raw_fd())))
            .collect()
    }

    fn into_spawned(self, pid: libc::pid_t) -> Spawned {
        let [a, b, c] = self.ends;
        let parent = |e: Option<(Option<OwnedFd>, OwnedFd)>| e.and_then(|(p, _child)| p);
        Spawned { pid, stdin: parent(a), stdout: parent(b), stderr: parent(c), pty: None }
    }
}

struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    unsafe fn new() -> io::Result<Self> {
        let mut a = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut a))?;
        Ok(FileActions(a))
    }
    unsafe fn dup2(&mut self, target: RawFd, fd: RawFd) -> io::Result<()> {
        check(libc::posix_spawn_file_actions_adddup2(&mut self.0, fd, target))
    }
    unsafe fn open(&mut self, target: RawFd, path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<()> {
        check(libc::posix_spawn_file_actions_addopen(&mut self.0, target, path.as_ptr(), flags, 0))
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised by posix_spawn_file_actions_init in `new`, destroyed once here.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

struct SpawnAttr(libc::posix_spawnattr_t);

impl SpawnAttr {
    unsafe fn new() -> io::Result<Self> {
        let mut a = std::mem::zeroed();
        check(libc::posix_spawnattr_init(&mut a))?;
        Ok(SpawnAttr(a))
    }

    /// Default dispositions for every signal, an empty mask, and optionally a
    /// new process group led by the child.
    unsafe fn reset_signals(&mut self, process_group: bool, new_session: bool) -> io::Result<()> {
        // Every bit set, not sigfillset(): glibc's sigfillset leaves out its
        // internal signals (32 and 33), and posix_spawn then sets those to
        // SIG_IGN in the child, which keeps them ignored across exec. The
        // child has its own handler table (no CLONE_SIGHAND), so this
        // touches nothing in the parent; SIGKILL/SIGSTOP are skipped by the
        // kernel.
        let mut all: libc::sigset_t = std::mem::zeroed();
        std::ptr::write_bytes(&mut all as *mut libc::sigset_t as *mut u8, 0xff, std::mem::size_of::<libc::sigset_t>());
        check(libc::posix_spawnattr_setsigdefault(&mut self.0, &all))?;
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        check(libc::posix_spawnattr_setsigmask(&mut self.0, &none))?;
        let mut flags = libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK;
        if new_session {
            // A session leader leads its own group too (setpgid would fail).
            flags |= POSIX_SPAWN_SETSID;
        } else if process_group {
            flags |= libc::POSIX_SPAWN_SETPGROUP;
            check(libc::posix_spawnattr_setpgroup(&mut self.0, 0))?;
        }
        check(libc::posix_spawnattr_setflags(&mut self.0, flags as libc::c_short))
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised by posix_spawnattr_init in `new`, destroyed once here.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
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
