//! The raw userdata the shim builds its handles on, one file per kind:
//! executors and the registry functions (`executor`), processes
//! (`process`), output streams (`stream`). Arguments go through convert/,
//! results become Lua values; operational errors are `nil, message`.

mod executor;
mod process;
mod stream;

pub use executor::install;

use mlua::{IntoLua, Lua, Value};

pub(super) type Fail = (Value, Option<String>);

pub(super) fn ok<T: IntoLua>(lua: &Lua, v: T) -> mlua::Result<Fail> {
    Ok((v.into_lua(lua)?, None))
}

pub(super) fn fail(msg: impl Into<String>) -> mlua::Result<Fail> {
    Ok((Value::Nil, Some(msg.into())))
}

pub(super) fn unit(lua: &Lua, r: Result<(), String>) -> mlua::Result<Fail> {
    match r {
        Ok(()) => ok(lua, true),
        Err(e) => fail(e),
    }
}
