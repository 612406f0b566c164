//! The child's three standard streams: pipes, socket pairs, /dev/null,
//! files, the parent's own, or another child's pipe.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{Redirect, SpawnRequest, Spawned, Stdio, Within};
use crate::core::command;
use crate::core::os::{open, sys};

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
fn open_path(i: usize, path: &std::path::Path, append: bool, within: Option<&Within>, umask: Option<u32>) -> Result<OwnedFd, Opened> {
    open_named(STREAMS[i], i == 0, path, append, within, umask).map_err(Opened::Path)
}

/// Open a path a child is given as `name` (a standard stream, or one of
/// `fds`), for reading or writing, with the standard streams' rules.
///
/// `umask`: the process's option, taken off a created file's mode.
pub(super) fn open_named(
    name: &str,
    read: bool,
    path: &std::path::Path,
    append: bool,
    within: Option<&Within>,
    umask: Option<u32>,
) -> Result<OwnedFd, String> {
    let mode = open::create_mode(umask);
    let r = match within {
        Some(w) => open::open_beneath(&w.root, &w.rel, read, append, mode),
        None => open::open_for_child(path, read, append, mode),
    };
    r.map_err(|e| {
        let reason = match (within, e.raw_os_error()) {
            (Some(w), Some(libc::EXDEV | libc::ELOOP)) => format!("it leads outside {} (through a symlink or '..')", w.rule),
            (_, Some(libc::ENXIO)) => format!("{} (a FIFO that nobody reads)", sys::describe(&e)),
            _ => sys::describe(&e),
        };
        format!("{name}: cannot open '{}': {reason}", command::shown_path(path))
    })
}

/// The pipes (or /dev/null, or files) for the three standard streams.
pub(super) struct StdioPipes {
    /// (parent end, child end) per stream; `None` for inherit.
    ends: [Option<(Option<OwnedFd>, OwnedFd)>; 3],
}

impl StdioPipes {
    pub(super) fn open(req: &SpawnRequest, what: &str) -> Result<StdioPipes, String> {
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
                    Some(Redirect::Path { path, append, within }) => Some((None, open_path(i, path, *append, within.as_ref(), req.attrs.umask)?)),
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
                    // (`first`: the child end of an earlier stream, in `ends`.)
                    Some(first) => Some((None, sys::dup_above_stdio(first)?)),
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
                // stdout inherited: stderr follows it to the parent's fd 1
                // (EBADF, a failed start, if the host closed its stdout).
                None => Some((None, sys::dup_above_stdio(1)?)),
            };
        }
        Ok(StdioPipes { ends })
    }

    pub(super) fn child_ends(&self) -> Vec<(RawFd, RawFd)> {
        self.ends
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|(_, child)| (i as RawFd, child.as_raw_fd())))
            .collect()
    }

    pub(super) fn into_spawned(self, pid: libc::pid_t) -> Spawned {
        let [a, b, c] = self.ends;
        let parent = |e: Option<(Option<OwnedFd>, OwnedFd)>| e.and_then(|(p, _child)| p);
        Spawned { pid, stdin: parent(a), stdout: parent(b), stderr: parent(c), pty: None }
    }
}
