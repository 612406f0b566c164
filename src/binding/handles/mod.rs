//! The raw userdata the shim builds its handles on, one file per kind:
//! executors and the registry functions (`executor`), processes
//! (`process`), output streams (`stream`). Arguments go through convert/,
//! results become Lua values.
//!
//! One convention for every raw function that can fail: its value, or
//! `nil, message, code`, where code is the core error's (core/error.rs:
//! "closed", "EPIPE", ...) and the shim returns or raises them as the
//! public function's rule says; a bad argument is `nil, message,
//! "bad_argument", n` with the argument's number, which the shim raises as
//! `bad argument #n (name) to 'function': message`.

mod executor;
mod process;
mod stream;

pub use executor::install;

use mlua::{IntoLua, Lua, MultiValue, Value};

use crate::binding::convert::BadArg;
use crate::core::error::Error;

/// The code of a bad argument (with its number after it).
pub(super) const BAD_ARGUMENT: &str = "bad_argument";

/// A value, or nil, message, code[, the bad argument's number].
pub(super) type Fail = (Value, Option<String>, Option<&'static str>, Option<i64>);

pub(super) fn ok<T: IntoLua>(lua: &Lua, v: T) -> mlua::Result<Fail> {
    Ok((v.into_lua(lua)?, None, None, None))
}

pub(super) fn fail(e: Error) -> mlua::Result<Fail> {
    Ok((Value::Nil, Some(e.to_string()), Some(e.code()), None))
}

pub(super) fn bad_arg(e: BadArg) -> mlua::Result<Fail> {
    Ok((Value::Nil, Some(e.message), Some(BAD_ARGUMENT), e.arg))
}

pub(super) fn unit(lua: &Lua, r: Result<(), Error>) -> mlua::Result<Fail> {
    match r {
        Ok(()) => ok(lua, true),
        Err(e) => fail(e),
    }
}

/// Push `nil, message, code` for `e` (a multi-valued result's failure).
pub(super) fn push_failure(lua: &Lua, out: &mut MultiValue, e: &Error) -> mlua::Result<()> {
    out.push_back(Value::Nil);
    out.push_back(Value::String(lua.create_string(e.to_string())?));
    out.push_back(Value::String(lua.create_string(e.code())?));
    Ok(())
}
