//! Output streams: chunk, line and whole reads into Lua values.

use mlua::{Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use super::{push_failure, unit};
use crate::core::error::Error;
use crate::core::io::stream::{Got, Stream, MAX_CHUNK};

pub struct StreamUd(pub(super) Stream);

/// Put every line of `block` (whole lines, each ending in a newline) into
/// `out[1..n]`, without the newlines, and return n. Done with the raw C API:
/// a line costs one string push, not a round trip through mlua.
fn push_lines(lua: &Lua, out: Table, block: &[u8]) -> mlua::Result<mlua::Integer> {
    // SAFETY: exec_raw runs the closure in protected mode with `out` at
    // stack index 1. The closure holds no value with a destructor (only
    // borrowed slices and integers), so a Lua error raised by a push (out
    // of memory) unwinds through nothing that needs dropping; mlua turns it
    // into an Err. Each push is followed by a rawseti that pops it, so the
    // stack never grows by more than one slot.
    unsafe {
        lua.exec_raw(out, |state| {
            let mut start = 0;
            let mut n = 0;
            for end in memchr::memchr_iter(b'\n', block) {
                n += 1;
                mlua::ffi::lua_pushlstring(state, block[start..end].as_ptr().cast(), end - start);
                mlua::ffi::lua_rawseti(state, 1, n as _);
                start = end + 1;
            }
            mlua::ffi::lua_settop(state, 0);
            mlua::ffi::lua_pushinteger(state, n as _);
        })
    }
}

/// A failure as Lua values: nil, message, code.
fn failure(lua: &Lua, e: Error) -> mlua::Result<MultiValue> {
    let mut out = MultiValue::new();
    push_failure(lua, &mut out, &e)?;
    Ok(out)
}

/// A line or whole read's outcome as Lua values: data | false (would block)
/// | nil (end) | nil, message, code.
fn got<T>(
    lua: &Lua,
    r: Result<Got<T>, Error>,
    limit: usize,
    data: impl FnOnce(T) -> mlua::Result<Value>,
) -> mlua::Result<MultiValue> {
    match r {
        Ok(Got::Data(v)) => Ok(MultiValue::from_vec(vec![data(v)?])),
        Ok(Got::WouldBlock) => Ok(MultiValue::from_vec(vec![Value::Boolean(false)])),
        Ok(Got::Eof) => Ok(MultiValue::from_vec(vec![Value::Nil])),
        Ok(Got::Dropped(bytes)) => failure(lua, Error::Dropped { bytes, limit }),
        Err(e) => failure(lua, e),
    }
}

impl UserData for StreamUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // string | false (would block) | nil (end) | nil, message, code
        m.add_method_mut("read", |lua, this, max: usize| {
            let want = max.clamp(1, MAX_CHUNK);
            let limit = this.0.buffer_limit();
            // The Lua string is made from the bytes where they lie.
            let r = this.0.read_chunk(want, |bytes| lua.create_string(bytes));
            got(lua, r, limit, |s| Ok(Value::String(s?)))
        });
        // string | false (would block) | nil (end) | nil, message, code
        m.add_method_mut("read_line", |lua, this, keep: bool| {
            let limit = this.0.buffer_limit();
            let r = this.0.read_line(keep, |line| lua.create_string(line));
            got(lua, r, limit, |s| Ok(Value::String(s?)))
        });
        // n (lines put in out[1..n]) | last_line, true (the last line, which
        // has no newline) | false (would block) | nil (end) | nil, message, code
        m.add_method_mut("read_lines", |lua, this, out: Table| {
            let limit = this.0.buffer_limit();
            let (r, unterminated) = match this.0.read_lines_block(|block| block.to_vec()) {
                Ok((g, u)) => (Ok(g), u),
                Err(e) => (Err(e), false),
            };
            match r {
                Ok(Got::Data(block)) if unterminated => Ok(MultiValue::from_vec(vec![
                    Value::String(lua.create_string(&block)?),
                    Value::Boolean(true),
                ])),
                Ok(Got::Data(block)) => {
                    let n: mlua::Integer = push_lines(lua, out, &block)?;
                    Ok(MultiValue::from_vec(vec![Value::Integer(n)]))
                }
                other => got(lua, other, limit, |_: Vec<u8>| Ok(Value::Nil)),
            }
        });
        // string | false (would block) | nil, message, code
        m.add_method_mut("read_all", |lua, this, ()| {
            let limit = this.0.buffer_limit();
            // Moved out of the stream, then copied once into a Lua string.
            let r = this.0.read_whole();
            got(lua, r, limit, |all| Ok(Value::String(lua.create_string(&all)?)))
        });
        m.add_method_mut("unread", |lua, this, data: mlua::String| {
            let r = this.0.unread(&data.as_bytes());
            unit(lua, r)
        });
        // A C function reading this stream's buffered lines (see
        // line_reader.rs): the method `read` of stream object `me`, or
        // (iterator true) a lines() iterator; `fallback` does the rest.
        #[cfg(any(feature = "lua53", feature = "lua54"))]
        m.add_method(
            "line_reader",
            |lua, this, (me, fallback, iterator): (Value, mlua::Function, bool)| {
                let closing = crate::binding::state(lua)?.closing.clone();
                crate::binding::line_reader::new(lua, this.0.buffered_lines(), closing, me, fallback, iterator, crate::binding::state_end::live_table(lua)?)
            },
        );
        // The scan and text methods of a lines scanner `me` of this stream
        // (see line_reader.rs): C functions serving buffered lines, with
        // the token in `token[1]`; the fallbacks do the rest.
        #[cfg(any(feature = "lua53", feature = "lua54"))]
        m.add_method(
            "scanner_methods",
            |lua, this, (me, scan, text, token): (Value, mlua::Function, mlua::Function, Table)| {
                let closing = crate::binding::state(lua)?.closing.clone();
                crate::binding::line_reader::new_scanner(lua, this.0.buffered_lines(), closing, me, [scan, text], token, crate::binding::state_end::live_table(lua)?)
            },
        );
        m.add_method("token", |_, this, ()| Ok(this.0.token()));
        m.add_method("closed", |_, this, ()| Ok(this.0.is_closed()));
        m.add_method_mut("close", |_, this, ()| {
            this.0.close();
            Ok(true)
        });
    }
}
