#![warn(clippy::undocumented_unsafe_blocks)]
// Without a Lua feature only the core is built (for `cargo test`): what the
// binding uses looks unused then.
#![cfg_attr(not(any(feature = "lua54", feature = "luajit", feature = "lua53", feature = "lua51")), allow(dead_code, unused_imports))]

pub(crate) mod core;

#[cfg(any(feature = "lua54", feature = "luajit", feature = "lua53", feature = "lua51"))]
mod binding;
