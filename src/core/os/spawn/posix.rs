//! Starting a child with `posix_spawn`: the fast path.
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

use std::io;
use std::os::fd::RawFd;

use super::plan::ChildPlan;

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

/// Whether the fast path can be taken here.
pub(super) fn available() -> bool {
    EXTENSIONS.is_some()
}

/// Start `plan` with posix_spawn; `None` where it lacks the extensions the
/// child needs (then the fork path starts it).
pub(super) fn spawn(plan: &ChildPlan) -> Option<io::Result<Result<libc::pid_t, libc::c_int>>> {
    EXTENSIONS.as_ref().map(|ext| spawn_posix(plan, ext))
}

/// glibc >= 2.26: the child calls setsid() (not in every libc crate version).
const POSIX_SPAWN_SETSID: libc::c_int = 0x80;

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
