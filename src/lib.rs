pub mod core;

#[cfg(any(feature = "lua54", feature = "luajit"))]
mod binding;
