//! What stdin, stdout and stderr take: a mode name, a path, a Lua file,
//! or (stdin) another process's output stream.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;

use mlua::{AnyUserData, Lua, Table, Value};

use super::*;
use crate::core::os::spawn::{Redirect, Stdio};

/// One of stdin/stdout/stderr: a mode name, `{ path =, append = }`, a Lua
/// file, or (stdin only) another process's output stream (`stream`, which
/// the shim unwrapped from its handle), handed over once the process is
/// prepared (see the `exec` method).
pub(super) fn stdio(
    lua: &Lua,
    t: &Table,
    key: &str,
    stream: Option<AnyUserData>,
) -> Result<(Stdio, Option<Redirect>, Option<AnyUserData>), String> {
    if let Some(ud) = stream {
        if key != "stdin" {
            return Err(format!("option {key}: only stdin can take another process's output stream"));
        }
        return Ok((Stdio::File, None, Some(ud)));
    }
    match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => Ok((Stdio::Pipe, None, None)),
        Value::String(s) => {
            let mode = command::shown(&s.as_bytes());
            Stdio::parse(&mode, key).map(|m| (m, None, None)).ok_or_else(|| {
                let names: Vec<String> = Stdio::named(key).map(|m| format!("\"{}\"", m.name())).collect();
                format!("option {key} must be {}, a file or {{ path = ... }} (got \"{mode}\")", names.join(", "))
            })
        }
        Value::Table(p) => Ok((Stdio::File, Some(path_redirect(&p, key)?), None)),
        // (A stream handle arrives unwrapped, as `stream`, from the shim.)
        v @ Value::UserData(_) => {
            let fd = lua_file_fd(lua, v, key, "a string, a file or a table")?;
            Ok((Stdio::File, Some(Redirect::Fd(Arc::new(fd))), None))
        }
        other => Err(format!("option {key} must be a string, a file or a table (got {})", type_of(&other))),
    }
}

/// `{ path = "out.log", append = true }`: opened when the child starts.
pub(super) fn path_redirect(t: &Table, key: &str) -> Result<Redirect, String> {
    let mut path = None;
    let mut append = false;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        match (k.as_string().map(|s| s.to_string_lossy()).as_deref(), v) {
            (Some("path"), Value::String(p)) => path = Some(PathBuf::from(OsString::from_vec(p.as_bytes().to_vec()))),
            (Some("append"), Value::Boolean(b)) if key != "stdin" => append = b,
            (Some("append"), _) if key == "stdin" => return Err("option stdin: append is for stdout and stderr".into()),
            (Some(name @ ("path" | "append")), v) => {
                return Err(format!("option {key}: {name} must be a {} (got {})",
                    if name == "path" { "string" } else { "boolean" }, type_of(&v)))
            }
            _ => {
                let name = match &k {
                    Value::String(s) => format!("'{}'", command::shown(&s.as_bytes())),
                    other => format!("of type {}", type_of(other)),
                };
                return Err(format!("option {key}: unknown field {name} (use path and append)"));
            }
        }
    }
    match path {
        Some(p) if !p.as_os_str().is_empty() && !p.as_os_str().as_encoded_bytes().contains(&0) => {
            Ok(Redirect::Path { path: p, append, within: None })
        }
        Some(_) => Err(format!("option {key}: path must be a non-empty string without NUL bytes")),
        None => Err(format!("option {key}: a table needs a path ({{ path = \"file\" }})")),
    }
}

/// The descriptor of an open Lua file (io.open, io.popen, io.stdout...),
/// flushed and duplicated (close-on-exec, above 2): the child gets the
/// duplicate, and closing the Lua file later changes nothing for it.
/// `takes`: what the option may be, for the message when `v` is another
/// userdata.
pub(super) fn lua_file_fd(lua: &Lua, v: Value, key: &str, takes: &str) -> Result<OwnedFd, String> {
    // SAFETY: exec_raw runs the closure in protected mode with the value at
    // stack index 1. Its memory is used only if it is a userdata whose
    // metatable is the registry's "FILE*", i.e. a file of the io library,
    // whose block starts with the FILE pointer (luaL_Stream in 5.2-5.4,
    // IOFileUD in LuaJIT, FILE* in 5.1). A closed file has a NULL FILE
    // pointer there, or (5.2-5.4) a NULL close function after it; neither
    // is used then. The closure holds nothing with a destructor.
    let fd: mlua::Integer = unsafe {
        lua.exec_raw(v, |state| {
            use mlua::ffi;
            // luaL_testudata, which Lua 5.1 and LuaJIT lack.
            let mut p: *const *mut libc::FILE = std::ptr::null();
            if ffi::lua_type(state, 1) == ffi::LUA_TUSERDATA && ffi::lua_getmetatable(state, 1) != 0 {
                ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, c"FILE*".as_ptr());
                if ffi::lua_rawequal(state, -1, -2) != 0 {
                    p = ffi::lua_touserdata(state, 1) as *const *mut libc::FILE;
                }
            }
            let n = if p.is_null() {
                -2
            } else {
                #[cfg(any(feature = "lua54", feature = "lua53"))]
                let closed = (*p).is_null() || (*(p.add(1) as *const Option<unsafe extern "C" fn()>)).is_none();
                #[cfg(not(any(feature = "lua54", feature = "lua53")))]
                let closed = (*p).is_null();
                if closed {
                    -1
                } else {
                    libc::fflush(*p);
                    libc::fileno(*p) as mlua::Integer
                }
            };
            ffi::lua_settop(state, 0);
            ffi::lua_pushinteger(state, n as _);
        })
    }
    .map_err(lua_err)?;
    match fd {
        -2 => Err(format!("option {key} must be {takes} (got a userdata that is not a file)")),
        -1 => Err(format!("option {key}: the file is closed")),
        fd if fd < 0 => Err(format!("option {key}: the file has no descriptor")),
        // (A FILE whose descriptor someone closed behind Lua's back gives
        // EBADF here.)
        fd => sys::dup_above_stdio(fd as i32).map_err(|e| format!("option {key}: {}", sys::describe(&e))),
    }
}
