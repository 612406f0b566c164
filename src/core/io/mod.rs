//! Moving bytes and events: the epoll wrapper, the per-state event loop,
//! output streams and the stdin queue.

pub(crate) mod driver;
pub(crate) mod poller;
pub(crate) mod stdin;
pub(crate) mod stream;
