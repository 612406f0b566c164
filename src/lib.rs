#![warn(clippy::undocumented_unsafe_blocks)]

pub mod core;

#[cfg(any(feature = "lua54", feature = "luajit", feature = "lua53", feature = "lua51"))]
mod binding;
