//! Opening the files a child's stdin, stdout or stderr are redirected to
//! (`{ path = ... }`).
//!
//! Two rules hold for every open:
//! - it never blocks: a FIFO is opened with O_NONBLOCK (a FIFO without a
//!   writer opens at once and reads as end of file; one without a reader
//!   fails with ENXIO), and the descriptor is made blocking again before
//!   the child gets it, as a child expects. A blocking `open(2)` of a FIFO
//!   would freeze the interpreter, every task and timer with it, and
//!   Ctrl-C could not end it (the open is restarted after the signal);
//! - for a restricted executor, the path is resolved beneath a root
//!   directory (its `work_dir_within`) without any symlink or `..` leading
//!   out of it, in the kernel (`openat2` with RESOLVE_BENEATH), or, where
//!   the kernel lacks it, by a walk of the components that follows no
//!   symlink at all. Nothing is checked first and opened later, so a
//!   symlink swapped in between cannot redirect the open.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use super::sys::{above_stdio, cvt, set_blocking};

/// The flags of an open for a child's stdin (`read`) or output: an output
/// is created (mode 0666 less the umask: ours, and the process's `umask`
/// option, see `create_mode`) and truncated, or appended to.
fn access_flags(read: bool, append: bool) -> libc::c_int {
    let base = libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    base | if read {
        libc::O_RDONLY
    } else if append {
        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND
    } else {
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
    }
}

const CREATE_MODE: libc::mode_t = 0o666;

/// The mode a file created for a child is opened with: 0666 less the
/// child's `umask` (the kernel takes ours off too), so that a file the
/// program's output goes to is no more open than one it would create.
pub fn create_mode(umask: Option<u32>) -> libc::mode_t {
    CREATE_MODE & !(umask.unwrap_or(0) as libc::mode_t)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `fd` as the child gets it: blocking again, numbered above 2.
fn for_child(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: `fd` was just returned by an open call and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_blocking(fd.as_raw_fd())?;
    above_stdio(fd)
}

/// Open `path` (relative to our current directory) for a child.
/// `mode`: see `create_mode`.
pub fn open_for_child(path: &Path, read: bool, append: bool, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    // SAFETY: `c` is a NUL-terminated path; the result is checked.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), access_flags(read, append), mode as libc::c_uint) })?;
    for_child(fd)
}

/// Open `rel` (a relative path) beneath directory `root` for a child,
/// never leaving `root`: EXDEV (or ELOOP, in the walk) when a `..` or a
/// symlink would lead out of it.
pub fn open_beneath(root: &Path, rel: &Path, read: bool, append: bool, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let dir = open_dir(libc::AT_FDCWD, &c_path(root)?, 0)?;
    let flags = access_flags(read, append);
    match openat2_beneath(dir.as_raw_fd(), rel, flags, mode) {
        // No openat2 (before Linux 5.6: ENOSYS; refused by a seccomp
        // filter: EPERM). A real EPERM fails the walk the same way.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => walk_beneath(dir, rel, flags, mode),
        other => other.and_then(for_child),
    }
}

/// The test switch `LUA_EXEC_NO_OPENAT2` makes every open take the walk,
/// as on kernels before 5.6.
fn openat2_disabled() -> bool {
    static DISABLED: once_cell::sync::Lazy<bool> =
        once_cell::sync::Lazy::new(|| std::env::var_os("LUA_EXEC_NO_OPENAT2").is_some());
    *DISABLED
}

fn openat2_beneath(dir: RawFd, rel: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<RawFd> {
    if openat2_disabled() {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let c = c_path(rel)?;
    // SAFETY: open_how is a plain C struct; all-zero is its "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    // (openat2 refuses a mode without O_CREAT.)
    if flags & libc::O_CREAT != 0 {
        how.mode = mode as u64;
    }
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `c` is NUL-terminated and `how` a live open_how of the size given.
    let r = unsafe { libc::syscall(libc::SYS_openat2, dir, c.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as RawFd)
}

fn open_dir(at: RawFd, name: &std::ffi::CStr, nofollow: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the result is checked.
    let fd = cvt(unsafe { libc::openat(at, name.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | nofollow) })?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2_beneath` without openat2: one component at a time from `root`,
/// following no symlink (O_NOFOLLOW everywhere: a symlink gives ELOOP or
/// ENOTDIR, even one that would stay inside) and no `..` above `root`.
fn walk_beneath(root: OwnedFd, rel: &Path, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let parts: Vec<Component> = rel.components().collect();
    let Some((last, dirs)) = parts.split_last() else { return Err(io::Error::from_raw_os_error(libc::EISDIR)) };
    let mut stack = vec![root];
    for part in dirs {
        match part {
            Component::CurDir => {}
            Component::ParentDir if stack.len() > 1 => {
                stack.pop();
            }
            Component::Normal(name) => {
                let c = CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                let top = stack.last().map_or(-1, |d| d.as_raw_fd());
                let next = open_dir(top, &c, libc::O_NOFOLLOW).map_err(|e| symlink_as_eloop(e, top, &c))?;
                stack.push(next);
            }
            _ => return Err(io::Error::from_raw_os_error(libc::EXDEV)),
        }
    }
    let Component::Normal(name) = last else { return Err(io::Error::from_raw_os_error(libc::EXDEV)) };
    let c = CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let top = stack.last().map_or(-1, |d| d.as_raw_fd());
    // SAFETY: `c` is NUL-terminated; the result is checked.
    let fd = cvt(unsafe { libc::openat(top, c.as_ptr(), flags | libc::O_NOFOLLOW, mode as libc::c_uint) })?;
    for_child(fd)
}

/// A directory component that is a symlink fails O_NOFOLLOW|O_DIRECTORY
/// with ENOTDIR, the error of a plain file there: say ELOOP, as openat2
/// does and as the last component's O_NOFOLLOW does, so that the caller
/// is told the path leads out through a symlink.
fn symlink_as_eloop(e: io::Error, dir: RawFd, name: &CString) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOTDIR) {
        return e;
    }
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat gets a NUL-terminated name and a valid pointer; its
    // result is checked.
    let r = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        io::Error::from_raw_os_error(libc::ELOOP)
    } else {
        e
    }
}

/// Read a data file (a resource file of `exec.registry.load`) of at most
/// `limit` bytes, never blocking: it is opened with O_NONBLOCK and read only
/// if it is a regular file (a FIFO, a terminal or a device could block the
/// program or never end). Errors are the messages callers show after the path.
pub fn read_data_file(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let c = c_path(path).map_err(|e| super::sys::describe(&e))?;
    // SAFETY: `c` is NUL-terminated; the result is checked.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) })
        .map_err(|e| super::sys::describe(&e))?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let meta = file.metadata().map_err(|e| super::sys::describe(&e))?;
    if !meta.is_file() {
        return Err("not a regular file (a resource file is read whole, and this one could block or never end)".into());
    }
    let mut data = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut data).map_err(|e| super::sys::describe(&e))?;
    if data.len() > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree(name: &str) -> Dir {
        let root = std::env::temp_dir().join(format!("lua-exec-open-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/in.txt"), "inside\n").unwrap();
        symlink("/etc/passwd", root.join("out")).unwrap();
        symlink("sub/in.txt", root.join("near")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        Dir(root)
    }

    fn code(r: io::Result<OwnedFd>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    #[test]
    fn beneath_refuses_every_way_out() {
        let d = tree("kernel");
        let root = &d.0;
        assert!(open_beneath(root, Path::new("sub/in.txt"), true, false, CREATE_MODE).is_ok());
        assert!(open_beneath(root, Path::new("sub/../sub/in.txt"), true, false, CREATE_MODE).is_ok());
        for escape in ["out", "etc/passwd", "../etc/passwd", "sub/../../etc/passwd", "/etc/passwd"] {
            let c = code(open_beneath(root, Path::new(escape), true, false, CREATE_MODE));
            assert!(matches!(c, Some(libc::EXDEV | libc::ELOOP)), "{escape}: {c:?}");
        }
    }

    #[test]
    fn the_walk_follows_no_symlink_and_no_dotdot_above_the_root() {
        let d = tree("walk");
        let root = &d.0;
        let walk = |rel: &str| {
            let dir = open_dir(libc::AT_FDCWD, &c_path(root).unwrap(), 0).unwrap();
            walk_beneath(dir, Path::new(rel), access_flags(true, false), CREATE_MODE)
        };
        assert!(walk("sub/in.txt").is_ok());
        assert!(walk("sub/../sub/in.txt").is_ok());
        // A symlink, as the last component or a directory on the way, is
        // ELOOP (said to the caller as a way out), as openat2 says it.
        for escape in ["out", "near", "etc/passwd", "../etc/passwd", "sub/../../etc/passwd", "/etc/passwd"] {
            let c = code(walk(escape));
            assert!(matches!(c, Some(libc::EXDEV | libc::ELOOP)), "{escape}: {c:?}");
        }
        // A plain file on the way is still what it is.
        assert_eq!(code(walk("sub/in.txt/x")), Some(libc::ENOTDIR));
    }

    #[test]
    fn a_data_file_is_read_only_if_regular_and_small_enough() {
        let d = tree("data");
        assert_eq!(read_data_file(&d.0.join("sub/in.txt"), 100).unwrap(), b"inside\n");
        assert_eq!(read_data_file(&d.0.join("sub/in.txt"), 3).unwrap_err(), "larger than 3 bytes");
        let fifo = d.0.join("f");
        let c = c_path(&fifo).unwrap();
        // SAFETY: `c` is NUL-terminated.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_data_file(&fifo, 100).unwrap_err().starts_with("not a regular file"));
        assert!(read_data_file(Path::new("/dev/zero"), 100).unwrap_err().starts_with("not a regular file"));
        assert!(read_data_file(&d.0.join("missing"), 100).unwrap_err().contains("No such file"));
    }

    #[test]
    fn a_fifo_never_blocks_the_open() {
        let d = tree("fifo");
        let fifo = d.0.join("f");
        let c = c_path(&fifo).unwrap();
        // SAFETY: `c` is NUL-terminated.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer: the read side opens at once (the child reads end of file).
        let r = open_for_child(&fifo, true, false, CREATE_MODE).unwrap();
        // SAFETY: fcntl has no pointer arguments.
        let flags = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0, "the child gets a blocking descriptor");
        drop(r);
        // No reader: the write side fails at once instead of waiting for one.
        assert_eq!(code(open_for_child(&fifo, false, false, CREATE_MODE)), Some(libc::ENXIO));
    }
}
