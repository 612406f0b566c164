//! The Lua-free core: spawning, pipes, the event loop, the child table and
//! the resource registry. Nothing here knows about Lua; `cargo test` runs it.
//!
//! - `os/`: starting children (`spawn`), the table of our children and its
//!   reaper (`children`), system call wrappers (`sys`);
//! - `io/`: epoll (`poller`), the per-state event loop (`driver`), output
//!   streams (`stream`) and the stdin queue (`stdin`);
//! - `remote/`: processes on other hosts through OpenSSH (`ssh`);
//! - here: what to run (`command`), what a restricted executor allows
//!   (`policy`), one process's life (`process`), the resource registry
//!   (`registry`) and its JSON files (`json`).

pub(crate) mod command;
pub(crate) mod error;
pub(crate) mod io;
pub(crate) mod json;
pub(crate) mod os;
pub(crate) mod policy;
pub(crate) mod process;
pub(crate) mod registry;
pub(crate) mod remote;
