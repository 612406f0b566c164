//! Raw userdata for executors, processes and streams, and the registry
//! functions. Arguments arrive already type-checked by the Lua shim; this
//! layer converts them, calls the core and maps results to Lua values.

use std::path::PathBuf;
use std::rc::Rc;

use mlua::{IntoLua, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use super::StateCtx;
use crate::core::command::{Bytes, CommandSpec};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use crate::core::policy::Policy;
use crate::core::process::{Output, Process, State, WaitStep};
use crate::core::json::Json;
use crate::core::registry::{ExecOptions, Executor, ExecutorConfig, NATIVE_KIND, SSH_KIND};
use crate::core::remote::ssh::{Readiness, SshTarget};
use crate::core::os::spawn::{Redirect, Stdio};
use crate::core::os::sys;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use crate::core::io::stream::{with_scratch, Got, Stream, StreamRead, MAX_CHUNK};

type Fail = (Value, Option<String>);

fn ok<T: mlua::IntoLua>(lua: &Lua, v: T) -> mlua::Result<Fail> {
    Ok((v.into_lua(lua)?, None))
}

fn fail(msg: impl Into<String>) -> mlua::Result<Fail> {
    Ok((Value::Nil, Some(msg.into())))
}

/// A Lua string as the bytes it holds (Unix arguments, paths and
/// environments are bytes, not UTF-8).
fn text(v: Value, what: &str) -> Result<Bytes, String> {
    match v {
        Value::String(s) => Ok(OsString::from_vec(s.as_bytes().to_vec())),
        other => Err(format!("{what} must be a string (got {})", other.type_name())),
    }
}

fn opt_text(t: &Table, key: &str) -> Result<Option<Bytes>, String> {
    match t.raw_get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        v => text(v, key).map(Some),
    }
}

/// A flat `{k1, v1, k2, v2, ...}` list, as the shim passes environments.
fn pairs_list(t: &Table, key: &str) -> Result<Option<Vec<(Bytes, Bytes)>>, String> {
    let list: Table = match t.raw_get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => return Ok(None),
        Value::Table(l) => l,
        v => return Err(format!("{key} must be a table (got {})", v.type_name())),
    };
    let mut out = Vec::new();
    let n = list.raw_len();
    let mut i = 1;
    while i < n {
        let k = text(list.raw_get(i).map_err(|e| e.to_string())?, key)?;
        let v = text(list.raw_get(i + 1).map_err(|e| e.to_string())?, key)?;
        out.push((k, v));
        i += 2;
    }
    Ok(Some(out))
}

/// One of stdin/stdout/stderr: a mode name, `{ path =, append = }`, a Lua
/// file, or (stdin only) another process's output stream, which is handed
/// over once the process is prepared (see the `exec` method).
fn stdio(lua: &Lua, t: &Table, key: &str) -> Result<(Stdio, Option<Redirect>, Option<mlua::AnyUserData>), String> {
    match t.raw_get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok((Stdio::Pipe, None, None)),
        Value::String(s) => {
            let mode = s.to_string_lossy();
            Stdio::parse(&mode, key).map(|m| (m, None, None)).ok_or_else(|| {
                format!(
                    "option {key} must be \"pipe\", \"socket\", \"null\", \"inherit\"{}, a file or {{ path = ... }} (got \"{mode}\")",
                    if key == "stderr" { ", \"stdout\"" } else { "" }
                )
            })
        }
        Value::Table(p) => Ok((Stdio::File, Some(path_redirect(&p, key)?), None)),
        Value::UserData(ud) => {
            if ud.is::<StreamUd>() {
                if key != "stdin" {
                    return Err(format!("option {key}: only stdin can take another process's output stream"));
                }
                return Ok((Stdio::File, None, Some(ud)));
            }
            let fd = lua_file_fd(lua, Value::UserData(ud), key)?;
            Ok((Stdio::File, Some(Redirect::Fd(Arc::new(fd))), None))
        }
        other => Err(format!("option {key} must be a string, a file or a table (got {})", other.type_name())),
    }
}

/// Floats at or above this may not hold the whole number the caller wrote.
const EXACT_FLOAT: f64 = 1e15;

/// `v` as a whole number from `min` to `max`: a Lua integer, or a float
/// without fraction (below EXACT_FLOAT); `None` for anything else.
fn whole_number(v: &Value, min: i64, max: i64) -> Option<i64> {
    match *v {
        Value::Integer(n) if (min..=max).contains(&n) => Some(n),
        Value::Number(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 && n < EXACT_FLOAT => Some(n as i64),
        _ => None,
    }
}

/// `pty = true` (24 x 80) or `pty = { rows =, cols = }`.
fn pty_size(t: &Table) -> Result<Option<(u16, u16)>, String> {
    const DEFAULT: (u16, u16) = (24, 80);
    let size = |v: Value, name: &str| -> Result<Option<u16>, String> {
        match (&v, whole_number(&v, 1, 65535)) {
            (Value::Nil, _) => Ok(None),
            (_, Some(n)) => Ok(Some(n as u16)),
            _ => Err(format!("option pty: {name} must be a whole number from 1 to 65535 (got {})", lua_repr(&v))),
        }
    };
    match t.raw_get::<Value>("pty").map_err(|e| e.to_string())? {
        Value::Nil | Value::Boolean(false) => Ok(None),
        Value::Boolean(true) => Ok(Some(DEFAULT)),
        Value::Table(p) => {
            for pair in p.pairs::<Value, Value>() {
                let (k, _) = pair.map_err(|e| e.to_string())?;
                if !matches!(k.as_string().map(|s| s.to_string_lossy()).as_deref(), Some("rows" | "cols")) {
                    return Err("option pty: a table takes rows and cols only".into());
                }
            }
            let rows = size(p.raw_get("rows").map_err(|e| e.to_string())?, "rows")?.unwrap_or(DEFAULT.0);
            let cols = size(p.raw_get("cols").map_err(|e| e.to_string())?, "cols")?.unwrap_or(DEFAULT.1);
            Ok(Some((rows, cols)))
        }
        v => Err(format!("option pty must be true or {{ rows =, cols = }} (got {})", v.type_name())),
    }
}

/// `{ path = "out.log", append = true }`: opened when the child starts.
fn path_redirect(t: &Table, key: &str) -> Result<Redirect, String> {
    let mut path = None;
    let mut append = false;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        match (k.as_string().map(|s| s.to_string_lossy()).as_deref(), v) {
            (Some("path"), Value::String(p)) => path = Some(PathBuf::from(OsString::from_vec(p.as_bytes().to_vec()))),
            (Some("append"), Value::Boolean(b)) if key != "stdin" => append = b,
            (Some("append"), _) if key == "stdin" => return Err("option stdin: append is for stdout and stderr".into()),
            (Some(name @ ("path" | "append")), v) => {
                return Err(format!("option {key}: {name} must be a {} (got {})",
                    if name == "path" { "string" } else { "boolean" }, v.type_name()))
            }
            _ => {
                let name = match &k {
                    Value::String(s) => format!("'{}'", s.to_string_lossy()),
                    other => format!("of type {}", other.type_name()),
                };
                return Err(format!("option {key}: unknown field {name} (use path and append)"));
            }
        }
    }
    match path {
        Some(p) if !p.as_os_str().is_empty() && !p.as_os_str().as_encoded_bytes().contains(&0) => {
            Ok(Redirect::Path { path: p, append })
        }
        Some(_) => Err(format!("option {key}: path must be a non-empty string without NUL bytes")),
        None => Err(format!("option {key}: a table needs a path ({{ path = \"file\" }})")),
    }
}

/// The descriptor of an open Lua file (io.open, io.popen, io.stdout...),
/// flushed and duplicated (close-on-exec, above 2): the child gets the
/// duplicate, and closing the Lua file later changes nothing for it.
fn lua_file_fd(lua: &Lua, v: Value, key: &str) -> Result<OwnedFd, String> {
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
    .map_err(|e| e.to_string())?;
    match fd {
        -2 => Err(format!("option {key} must be a string, a file or a table (got a userdata that is not a file)")),
        -1 => Err(format!("option {key}: the file is closed")),
        fd if fd < 0 => Err(format!("option {key}: the file has no descriptor")),
        fd => {
            // SAFETY: `fd` is open (the file is), borrowed only to duplicate it.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd as i32) };
            let dup = borrowed.try_clone_to_owned().map_err(|e| format!("option {key}: {}", sys::describe(&e)))?;
            sys::above_stdio(dup).map_err(|e| format!("option {key}: {}", sys::describe(&e)))
        }
    }
}

fn command(v: Value) -> Result<CommandSpec, String> {
    match v {
        Value::String(_) => Ok(CommandSpec::Shell(text(v, "command")?)),
        Value::Table(t) => {
            let mut args = Vec::with_capacity(t.raw_len());
            for i in 1..=t.raw_len() {
                args.push(text(t.raw_get(i).map_err(|e| e.to_string())?, &format!("command[{i}]"))?);
            }
            Ok(CommandSpec::Argv(args))
        }
        other => Err(format!("command must be a string or a table of strings (got {})", other.type_name())),
    }
}

/// The options of `exec`, and (stdin = another process's stream) the stream
/// to hand over once the process is prepared.
fn exec_options(lua: &Lua, v: Value) -> Result<(ExecOptions, Option<mlua::AnyUserData>), String> {
    let t = match v {
        Value::Nil => return Ok((ExecOptions::default(), None)),
        Value::Table(t) => t,
        other => return Err(format!("options must be a table (got {})", other.type_name())),
    };
    let (stdin, in_file, in_stream) = stdio(lua, &t, "stdin")?;
    let (stdout, out_file, _) = stdio(lua, &t, "stdout")?;
    let (stderr, err_file, _) = stdio(lua, &t, "stderr")?;
    let opts = ExecOptions {
        work_dir: opt_text(&t, "work_dir")?.map(PathBuf::from),
        env: pairs_list(&t, "env")?,
        stdin,
        stdout,
        stderr,
        redirect: [in_file, out_file, err_file],
        detach: t.raw_get::<Option<bool>>("detach").map_err(|e| e.to_string())?.unwrap_or(false),
        pty: pty_size(&t)?,
        process_group: t.raw_get::<Option<bool>>("process_group").map_err(|e| e.to_string())?.unwrap_or(false),
        buffer_limit: match t.raw_get::<Value>("buffer_limit").map_err(|e| e.to_string())? {
            Value::Nil => None,
            v => match whole_number(&v, 1, i64::MAX) {
                Some(n) => Some(n as usize),
                None => return Err(format!("option buffer_limit must be a whole number of bytes >= 1 (got {})", lua_repr(&v))),
            },
        },
        inherit_env: t.raw_get::<Option<bool>>("inherit_env").map_err(|e| e.to_string())?,
    };
    Ok((opts, in_stream))
}

fn text_list(t: &Table, key: &str) -> Result<Option<Vec<Bytes>>, String> {
    match t.raw_get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Table(l) => (1..=l.raw_len())
            .map(|i| text(l.raw_get(i).map_err(|e| e.to_string())?, &format!("{key}[{i}]")))
            .collect::<Result<_, _>>()
            .map(Some),
        v => Err(format!("{key} must be a table (got {})", v.type_name())),
    }
}

fn executor_config(t: &Table) -> Result<ExecutorConfig, String> {
    let max = match t.raw_get::<Value>("max_processes").map_err(|e| e.to_string())? {
        Value::Nil => None,
        v => match whole_number(&v, 1, i64::MAX) {
            Some(n) => Some(n as usize),
            None => return Err(format!("max_processes must be a whole number of at least 1 (got {})", lua_repr(&v))),
        },
    };
    Ok(ExecutorConfig {
        default_work_dir: opt_text(t, "default_work_dir")?.map(PathBuf::from),
        default_env: pairs_list(t, "default_env")?,
        policy: Policy {
            whitelist: text_list(t, "command_whitelist")?.unwrap_or_default(),
            allowed_env: text_list(t, "allowed_env")?,
            work_dir_within: opt_text(t, "work_dir_within")?.map(PathBuf::from),
        },
        max_processes: max,
        queue: t.raw_get::<Option<bool>>("queue").map_err(|e| e.to_string())?.unwrap_or(false),
        inherit_env: t.raw_get::<Option<bool>>("inherit_env").map_err(|e| e.to_string())?.unwrap_or(false),
    })
}

/// The connection fields of an `exec.ssh` resource (types checked in Lua).
fn ssh_target(t: &Table) -> Result<SshTarget, String> {
    let port = match t.raw_get::<Value>("port").map_err(|e| e.to_string())? {
        Value::Nil => None,
        v => match whole_number(&v, 1, 65535) {
            Some(n) => Some(n as u16),
            None => return Err(format!("port must be a whole number from 1 to 65535 (got {})", lua_repr(&v))),
        },
    };
    let mut options = Vec::new();
    if let Value::Table(o) = t.raw_get::<Value>("ssh_options").map_err(|e| e.to_string())? {
        for pair in o.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(|e| e.to_string())?;
            let k = text(k, "ssh_options keys")?;
            let v = match v {
                Value::Boolean(b) => Bytes::from(if b { "yes" } else { "no" }),
                Value::Integer(n) => Bytes::from(n.to_string()),
                Value::Number(n) => Bytes::from(n.to_string()),
                v => text(v, &format!("ssh_options.{}", k.to_string_lossy()))?,
            };
            options.push((k, v));
        }
        // Lua tables have no order; ssh takes the first value of an option.
        options.sort();
    }
    let target = SshTarget {
        host: opt_text(t, "host")?.ok_or("host is required")?,
        port,
        user: opt_text(t, "user")?,
        identity_file: opt_text(t, "identity_file")?,
        known_hosts_file: opt_text(t, "known_hosts_file")?,
        config_file: opt_text(t, "ssh_config_file")?,
        ssh_options: options,
        multiplex: t.raw_get::<Option<bool>>("multiplex").map_err(|e| e.to_string())?.unwrap_or(true),
        program: opt_text(t, "ssh_command")?,
    };
    target.validate()?;
    Ok(target)
}

fn json_to_lua(lua: &Lua, v: Json) -> mlua::Result<Value> {
    Ok(match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::Integer(n as mlua::Integer),
        Json::Number(n) => Value::Number(n),
        Json::String(s) => Value::String(lua.create_string(&s)?),
        Json::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        Json::Object(members) => {
            let t = lua.create_table_with_capacity(0, members.len())?;
            for (k, item) in members {
                t.raw_set(k, json_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

fn lua_repr(v: &Value) -> String {
    match v {
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.type_name().to_string(),
    }
}

pub struct ExecutorUd {
    ex: Executor,
    ctx: Rc<StateCtx>,
}

impl UserData for ExecutorUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // process | nil, message, the number of the bad argument (1: the
        // command, 2: the options) when the message is about one
        m.add_method("exec", |lua, this, (cmd, opts): (Value, Value)| {
            let bad = |msg: String, arg: Option<i64>| Ok((Value::Nil, Some(msg), arg));
            let spec = match command(cmd) {
                Ok(c) => c,
                Err(e) => return bad(e, Some(1)),
            };
            let (opts, in_stream) = match exec_options(lua, opts) {
                Ok(o) => o,
                Err(e) => return bad(e, Some(2)),
            };
            match this.ex.prepare(spec, opts) {
                Ok((mut req, remote, buffer_limit)) => {
                    // Handed over only now that nothing else can fail.
                    if let Some(ud) = in_stream {
                        let handed = ud.borrow_mut::<StreamUd>().map_err(|e| e.to_string()).and_then(|mut s| s.0.hand_over());
                        match handed {
                            Ok(fd) => req.redirect[0] = Some(Redirect::Fd(Arc::new(fd))),
                            Err(e) => return bad(format!("option stdin: the stream cannot be handed over: {e}"), Some(2)),
                        }
                    }
                    let mut p = Process::new(req, remote, this.ctx.driver.clone(), this.ctx.owner, this.ex.limit());
                    if let Some(b) = buffer_limit {
                        p.set_buffer_limit(b);
                    }
                    Ok((ProcessUd(p).into_lua(lua)?, None, None))
                }
                Err(e) => bad(e, None),
            }
        });
        m.add_method_mut("release", |_, this, ()| {
            this.ex.release();
            Ok(true)
        });
        m.add_method("released", |_, this, ()| Ok(this.ex.is_released()));
        m.add_method("id", |_, this, ()| Ok(this.ex.id().to_string()));
    }
}

pub struct ProcessUd(Process);

fn unit(lua: &Lua, r: Result<(), String>) -> mlua::Result<Fail> {
    match r {
        Ok(()) => ok(lua, true),
        Err(e) => fail(e),
    }
}

impl UserData for ProcessUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("start", |lua, this, ()| {
            let r = this.0.start();
            unit(lua, r)
        });
        // true (ready) | false (still connecting) | nil, message
        m.add_method("connect", |lua, this, ()| match this.0.connect() {
            Ok(r) => ok(lua, r == Readiness::Ready),
            Err(e) => fail(e),
        });
        m.add_method("pid", |_, this, ()| Ok(this.0.pid()));
        m.add_method("state", |_, this, ()| {
            Ok(match this.0.state() {
                State::Created => "created",
                State::Running => "running",
                State::Closed => "closed",
            })
        });
        m.add_method("code", |_, this, ()| Ok(this.0.code()));
        // For `queue = true`: the executor id to queue under (nil without
        // queueing), and whether a start would find a slot now.
        m.add_method("queue_id", |_, this, ()| Ok(this.0.queue_id()));
        m.add_method("has_room", |_, this, ()| Ok(this.0.has_room()));
        m.add_method_mut("resize", |lua, this, (rows, cols): (u16, u16)| match this.0.resize(rows, cols) {
            Ok(()) => ok(lua, true),
            Err(e) => fail(e),
        });
        m.add_method_mut("status", |_, this, ()| Ok(this.0.status()));
        m.add_method("command", |_, this, ()| Ok(this.0.command()));
        m.add_method("exit_token", |_, this, ()| Ok(this.0.exit_token()));
        m.add_method("stdin_token", |_, this, ()| Ok(this.0.stdin_token()));
        // code | false (still running) | nil, message
        m.add_method_mut("try_wait", |lua, this, ()| match this.0.try_wait() {
            Ok(Some(c)) => ok(lua, c),
            Ok(None) => ok(lua, false),
            Err(e) => fail(e),
        });
        // code, tokens to wake... | false, token | nil, message, tokens to wake...
        m.add_method_mut("wait_step", |lua, this, ()| {
            let (step, wake) = this.0.wait_step();
            let mut out = MultiValue::new();
            match step {
                WaitStep::Done(c) => out.push_back(Value::Integer(c as mlua::Integer)),
                WaitStep::Pending(t) => {
                    out.push_back(Value::Boolean(false));
                    out.push_back(t.into_lua(lua)?);
                    return Ok(out);
                }
                WaitStep::Failed(e) => {
                    out.push_back(Value::Nil);
                    out.push_back(Value::String(lua.create_string(e)?));
                }
            }
            for t in wake.into_iter().flatten() {
                out.push_back(t.into_lua(lua)?);
            }
            Ok(out)
        });
        // Signal what is left of a process group after its leader exited.
        m.add_method_mut("signal_rest", |_, this, sig: i64| Ok(this.0.signal_rest(sig.clamp(0, 64) as i32)));
        m.add_method_mut("finish", |_, this, ()| {
            this.0.finish();
            Ok(())
        });
        m.add_method_mut("signal", |lua, this, sig: i64| {
            let sig = sig.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
            let r = this.0.signal(sig);
            unit(lua, r)
        });
        m.add_method_mut("close", |_, this, sig: i32| {
            this.0.close_with(sig);
            Ok(true)
        });
        m.add_method_mut("stream", |lua, this, which: i64| {
            let which = if which == 1 { Output::Stdout } else { Output::Stderr };
            match this.0.take_stream(which) {
                Ok(s) => ok(lua, StreamUd(s)),
                Err(e) => fail(e),
            }
        });
        // bytes still queued | nil, message
        m.add_method_mut("write", |lua, this, data: mlua::String| match this.0.write_stdin(&data.as_bytes()) {
            Ok(q) => ok(lua, q),
            Err(e) => fail(e),
        });
        m.add_method("stdin_queued", |lua, this, ()| match this.0.stdin_queued() {
            Ok(q) => ok(lua, q),
            Err(e) => fail(e),
        });
        m.add_function("stdin_must_wait", |_, queued: usize| Ok(Process::stdin_must_wait(queued)));
        m.add_method_mut("close_stdin", |lua, this, ()| {
            let r = this.0.close_stdin();
            unit(lua, r)
        });
    }
}

pub struct StreamUd(Stream);

fn dropped_message(n: u64, limit: usize) -> String {
    format!("{n} bytes of output were dropped: more than the buffer_limit of {limit} bytes waited unread")
}

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

/// A line or whole read's outcome as Lua values: data | false (would block)
/// | nil (end) | nil, message.
fn got<T>(
    lua: &Lua,
    r: Result<Got<T>, String>,
    limit: usize,
    data: impl FnOnce(T) -> mlua::Result<Value>,
) -> mlua::Result<MultiValue> {
    let fail = |msg: String| -> mlua::Result<MultiValue> {
        Ok(MultiValue::from_vec(vec![Value::Nil, Value::String(lua.create_string(msg)?)]))
    };
    match r {
        Ok(Got::Data(v)) => Ok(MultiValue::from_vec(vec![data(v)?])),
        Ok(Got::WouldBlock) => Ok(MultiValue::from_vec(vec![Value::Boolean(false)])),
        Ok(Got::Eof) => Ok(MultiValue::from_vec(vec![Value::Nil])),
        Ok(Got::Dropped(n)) => fail(dropped_message(n, limit)),
        Err(e) => fail(e),
    }
}

impl UserData for StreamUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // string | false (would block) | nil (end) | nil, message
        // string | false (would block) | nil (end) | nil, message
        m.add_method_mut("read", |lua, this, max: usize| {
            let want = max.clamp(1, MAX_CHUNK);
            let r = with_scratch(|buf| match this.0.read(&mut buf[..want]) {
                Ok(StreamRead::Data(n)) => lua.create_string(&buf[..n]).map(|s| Ok(Value::String(s))),
                Ok(StreamRead::WouldBlock) => Ok(Ok(Value::Boolean(false))),
                Ok(StreamRead::Eof) => Ok(Ok(Value::Nil)),
                Ok(StreamRead::Dropped(n)) => Ok(Err(dropped_message(n, this.0.buffer_limit()))),
                Err(e) => Ok(Err(e)),
            })?;
            let mut out = MultiValue::new();
            match r {
                Ok(v) => out.push_back(v),
                Err(e) => {
                    out.push_back(Value::Nil);
                    out.push_back(Value::String(lua.create_string(e)?));
                }
            }
            Ok(out)
        });
        // string | false (would block) | nil (end) | nil, message
        m.add_method_mut("read_line", |lua, this, keep: bool| {
            let limit = this.0.buffer_limit();
            let r = this.0.read_line(keep, |line| lua.create_string(line));
            got(lua, r, limit, |s| Ok(Value::String(s?)))
        });
        // n (lines put in out[1..n]) | last_line, true (the last line, which
        // has no newline) | false (would block) | nil (end) | nil, message
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
        // string | false (would block) | nil, message
        m.add_method_mut("read_all", |lua, this, ()| {
            let limit = this.0.buffer_limit();
            let r = this.0.read_all(|all| lua.create_string(all));
            got(lua, r, limit, |s| Ok(Value::String(s?)))
        });
        m.add_method_mut("unread", |lua, this, data: mlua::String| {
            let r = this.0.unread(&data.as_bytes());
            unit(lua, r)
        });
        m.add_method("token", |_, this, ()| Ok(this.0.token()));
        m.add_method("closed", |_, this, ()| Ok(this.0.is_closed()));
        m.add_method_mut("close", |_, this, ()| {
            this.0.close();
            Ok(true)
        });
    }
}

pub fn install(lua: &Lua, core: &Table, ctx: Rc<StateCtx>) -> mlua::Result<()> {
    {
        let ctx = ctx.clone();
        core.set(
            "get",
            lua.create_function(move |lua, id: String| {
                let r = ctx.registry.borrow().acquire(&id);
                match r {
                    Ok(ex) => ok(lua, ExecutorUd { ex, ctx: ctx.clone() }),
                    Err(e) => fail(e),
                }
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        core.set(
            "define",
            lua.create_function(move |lua, (id, kind, cfg): (String, String, Table)| {
                let mut reg = ctx.registry.borrow_mut();
                let r = if kind == NATIVE_KIND {
                    match executor_config(&cfg) {
                        Ok(c) => reg.define_native(&id, c),
                        Err(e) => Err(e),
                    }
                } else if kind == SSH_KIND {
                    match executor_config(&cfg).and_then(|c| Ok((c, ssh_target(&cfg)?))) {
                        Ok((c, target)) => reg.define_ssh(&id, c, target),
                        Err(e) => Err(e),
                    }
                } else {
                    reg.define_other(&id, &kind)
                };
                unit(lua, r)
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        core.set(
            "undefine",
            lua.create_function(move |_, id: String| Ok(ctx.registry.borrow_mut().undefine(&id)))?,
        )?;
    }
    core.set(
        "json_decode",
        lua.create_function(|lua, text: mlua::String| {
            let text = match text.to_str() {
                Ok(t) => t.to_string(),
                Err(_) => return Ok((Value::Nil, Some("not valid UTF-8 text".to_string()))),
            };
            match crate::core::json::parse(&text) {
                Ok(v) => Ok((json_to_lua(lua, v)?, None)),
                Err(e) => Ok((Value::Nil, Some(e))),
            }
        })?,
    )?;
    core.set(
        "kind",
        lua.create_function(move |_, id: String| Ok(ctx.registry.borrow().kind(&id).map(|s| s.to_string())))?,
    )?;
    Ok(())
}
