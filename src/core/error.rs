//! What went wrong, as the core says it: a kind the rest of the code matches
//! on (never the text of a message), one message made from it (`Display`),
//! and a stable code that Lua gets beside the message (`nil, message, code`,
//! as luv returns an errno name). The codes are the public contract; the
//! messages may be reworded. The shim adds two of its own: "timeout" (a
//! deadline of wait(d) or read(..., d) passed) and "bad_argument" (the raw
//! API's way to say that an argument itself is wrong, which is raised).

use std::fmt;
use std::io;

use crate::core::os::sys;

/// What a `Closed` error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Process,
    Stream,
    Stdin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The process was never started.
    NotStarted,
    /// Closed by its owner (`close()`, a completed `wait()`, `close_stdin()`).
    Closed(What),
    /// The child has exited, and nothing of its group is left to signal.
    Finished,
    /// The stream was given to another process as its stdin.
    HandedOver,
    /// Bytes of unread output were dropped past the process's buffer_limit.
    Dropped { bytes: u64, limit: usize },
    /// The process has no such thing (a terminal to resize, a stdin pipe).
    Unsupported(String),
    /// A value that names nothing (a signal number outside 1-64).
    Invalid(String),
    /// A system call failed: the message says what was being done, with
    /// the system's reason; `errno` gives the code.
    Os { message: String, errno: i32 },
    /// Anything else, as its message (a remote side that failed, a spawn
    /// that could not be set up).
    Other(String),
}

impl Error {
    /// An OS error while `doing` something: "`doing`: <the system's text>".
    pub fn os(doing: impl fmt::Display, e: &io::Error) -> Error {
        Error::Os { message: format!("{doing}: {}", sys::describe(e)), errno: e.raw_os_error().unwrap_or(0) }
    }

    /// The stable code Lua gets beside the message (README, "Error codes").
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotStarted => "not_started",
            Error::Closed(_) => "closed",
            Error::Finished => "finished",
            Error::HandedOver => "handed_over",
            Error::Dropped { .. } => "dropped",
            Error::Unsupported(_) => "unsupported",
            Error::Invalid(_) => "invalid",
            Error::Os { errno, .. } => errno_name(*errno),
            Error::Other(_) => "failed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotStarted => f.write_str("process not started"),
            Error::Closed(What::Process) => f.write_str("process is closed"),
            Error::Closed(What::Stream) => f.write_str("stream is closed"),
            Error::Closed(What::Stdin) => f.write_str("stdin is closed"),
            Error::Finished => f.write_str("process has already finished"),
            Error::HandedOver => f.write_str("handed to another process"),
            Error::Dropped { bytes, limit } => write!(
                f,
                "{bytes} bytes of output were dropped: more than the buffer_limit of {limit} bytes waited unread"
            ),
            Error::Unsupported(m) | Error::Invalid(m) | Error::Other(m) => f.write_str(m),
            Error::Os { message, .. } => f.write_str(message),
        }
    }
}

/// Messages made elsewhere (a spawn's, a remote connection's) pass as they are.
impl From<String> for Error {
    fn from(m: String) -> Error {
        Error::Other(m)
    }
}

/// The errno names a program may meet here, as luv gives them; "os" for
/// any other.
fn errno_name(errno: i32) -> &'static str {
    const NAMES: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"), (libc::ENOENT, "ENOENT"), (libc::ESRCH, "ESRCH"), (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"), (libc::ENXIO, "ENXIO"), (libc::E2BIG, "E2BIG"), (libc::ENOEXEC, "ENOEXEC"),
        (libc::EBADF, "EBADF"), (libc::ECHILD, "ECHILD"), (libc::EAGAIN, "EAGAIN"), (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"), (libc::EEXIST, "EEXIST"), (libc::EXDEV, "EXDEV"), (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"), (libc::EINVAL, "EINVAL"), (libc::ENFILE, "ENFILE"), (libc::EMFILE, "EMFILE"),
        (libc::ETXTBSY, "ETXTBSY"), (libc::EFBIG, "EFBIG"), (libc::ENOSPC, "ENOSPC"), (libc::EROFS, "EROFS"),
        (libc::EPIPE, "EPIPE"), (libc::ENAMETOOLONG, "ENAMETOOLONG"), (libc::ENOSYS, "ENOSYS"),
        (libc::ELOOP, "ELOOP"), (libc::ECONNRESET, "ECONNRESET"), (libc::ECONNREFUSED, "ECONNREFUSED"),
    ];
    NAMES.iter().find(|(n, _)| *n == errno).map_or("os", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_message_and_code() {
        assert_eq!(Error::NotStarted.to_string(), "process not started");
        assert_eq!(Error::Closed(What::Stdin).code(), "closed");
        let e = Error::os("read failed", &io::Error::from_raw_os_error(libc::EPIPE));
        assert_eq!((e.to_string().as_str(), e.code()), ("read failed: Broken pipe", "EPIPE"));
        assert_eq!(Error::os("x", &io::Error::from_raw_os_error(9999)).code(), "os");
        assert_eq!(Error::from("boom".to_string()).code(), "failed");
    }
}
