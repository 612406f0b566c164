//! The Lua-free core: spawning, pipes, the event loop, the child table and
//! the resource registry. Nothing here knows about Lua; `cargo test` runs it.

pub mod children;
pub mod command;
pub mod driver;
pub mod json;
pub mod policy;
pub mod poller;
pub mod process;
pub mod registry;
pub mod spawn;
pub mod ssh;
pub mod stdin;
pub mod stream;
pub mod sys;
