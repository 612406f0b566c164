//! Lua values to core types: every check of an argument or option, and
//! its message, lives here (the shim passes what the caller gave, as is).
//! Each conversion says what was wrong without naming the function: the
//! shim adds `bad argument #N (name) to 'function':` at the caller's line.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;

use mlua::{AnyUserData, Lua, Table, Value};

use crate::core::command::{self, Bytes, CommandSpec};
use crate::core::os::spawn::{Redirect, Stdio};
use crate::core::os::sys;
use crate::core::policy::Policy;
use crate::core::registry::{ExecOptions, ExecutorConfig, NATIVE_KIND, SSH_KIND};
use crate::core::remote::ssh::SshTarget;

/// What a conversion failed on: a message, and (when it is about one) the
/// number of the bad argument.
pub struct BadArg {
    pub message: String,
    pub arg: Option<i64>,
}

impl BadArg {
    fn at(arg: i64) -> impl Fn(String) -> BadArg {
        move |message| BadArg { message, arg: Some(arg) }
    }

    /// As the raw API returns it: nil, message, the bad argument's number.
    pub fn into_fail(self) -> (Value, Option<String>, Option<i64>) {
        (Value::Nil, Some(self.message), self.arg)
    }
}

fn lua_err(e: mlua::Error) -> String {
    e.to_string()
}

/// Lua's own name for the type of `v` (what `type(v)` says).
pub fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// A table key as the messages show it (a number as `tostring` shows it).
fn key_repr(lua: &Lua, k: &Value) -> String {
    match k {
        Value::String(s) => command::shown(&s.as_bytes()),
        other => shown(lua, other),
    }
}

/// A Lua string as the bytes it holds (Unix arguments, paths and
/// environments are bytes, not UTF-8).
fn text(v: Value, what: &str) -> Result<Bytes, String> {
    text_named(v, || what.to_owned())
}

/// `text`, with the value's name made only if the message needs it.
fn text_named(v: Value, what: impl FnOnce() -> String) -> Result<Bytes, String> {
    match v {
        Value::String(s) => Ok(OsString::from_vec(s.as_bytes().to_vec())),
        other => Err(format!("{} must be a string (got {})", what(), type_of(&other))),
    }
}

fn opt_text(t: &Table, key: &str) -> Result<Option<Bytes>, String> {
    match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => Ok(None),
        v => text(v, key).map(Some),
    }
}

fn opt_bool(t: &Table, key: &str) -> Result<Option<bool>, String> {
    t.raw_get::<Option<bool>>(key).map_err(lua_err)
}

/// `t[key]` as a whole number from `min` to `max` (see whole_number), or
/// nil; otherwise "`expected` (got X)".
fn opt_whole(lua: &Lua, t: &Table, key: &str, (min, max): (i64, i64), expected: &str) -> Result<Option<i64>, String> {
    match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => Ok(None),
        v => whole_number(&v, min, max).map(Some).ok_or_else(|| format!("{expected} (got {})", shown(lua, &v))),
    }
}

/// The values of `t` in order if it is a list (keys 1..n only), else the
/// first other key, as messages show it. (The vector is as long as the
/// table's own array part, which holds that many slots already.)
fn list_values(lua: &Lua, t: &Table) -> Result<Vec<Value>, String> {
    // One pass: every key checked and every value taken (a hole inside the
    // length stays nil, and its conversion names it).
    let n = t.raw_len();
    let mut values = vec![Value::Nil; n];
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        match whole_number(&k, 1, n as i64) {
            Some(i) => values[i as usize - 1] = v,
            None => return Err(key_repr(lua, &k)),
        }
    }
    Ok(values)
}

/// Item `i` of list `key`: a string, or a number as `tostring` writes it
/// (`{ "sleep", 1 }`), as env values, `write_stdin` and `quote` take them.
fn text_item(lua: &Lua, v: Value, key: &str, i: usize) -> Result<Bytes, String> {
    match v {
        Value::Integer(_) | Value::Number(_) => number_or_text(lua, &v).ok_or_else(|| format!("{key}[{i}] cannot be shown as text")),
        Value::String(_) => text_named(v, || format!("{key}[{i}]")),
        other => Err(format!("{key}[{i}] must be a string or a number (got {})", type_of(&other))),
    }
}

/// The Lua type an option takes (`Any`: its own conversion checks it).
#[derive(Clone, Copy, PartialEq)]
enum Want {
    Any,
    Str,
    Bool,
    Num,
    Table,
}

impl Want {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Want::Any => true,
            Want::Str => matches!(v, Value::String(_)),
            Want::Bool => matches!(v, Value::Boolean(_)),
            Want::Num => matches!(v, Value::Integer(_) | Value::Number(_)),
            Want::Table => matches!(v, Value::Table(_)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Want::Any => "value",
            Want::Str => "string",
            Want::Bool => "boolean",
            Want::Num => "number",
            Want::Table => "table",
        }
    }
}

type Schema = &'static [(&'static str, Want)];

/// The options of `executor:exec` (and so of `exec.run`).
const EXEC_OPTIONS: Schema = &[
    ("work_dir", Want::Str),
    ("env", Want::Table),
    ("stdin", Want::Any),
    ("stdout", Want::Any),
    ("stderr", Want::Any),
    ("process_group", Want::Bool),
    ("timeout", Want::Any), // parsed by the shim's time module
    ("buffer_limit", Want::Num),
    ("inherit_env", Want::Bool),
    ("detach", Want::Bool),
    ("pty", Want::Any),
];

/// What `run` takes beyond exec's options (used by the shim's run).
const RUN_OPTIONS: Schema = &[("input", Want::Str), ("check", Want::Bool)];

/// The configuration of an `exec.native` resource (`kind` aside).
const NATIVE_OPTIONS: Schema = &[
    ("default_work_dir", Want::Str),
    ("default_env", Want::Table),
    ("command_whitelist", Want::Table),
    ("max_processes", Want::Num),
    ("allowed_env", Want::Table),
    ("work_dir_within", Want::Str),
    ("inherit_env", Want::Bool),
    ("queue", Want::Bool),
    ("allow_inherit", Want::Bool),
];

/// What an `exec.ssh` resource adds: the connection.
const SSH_OPTIONS: Schema = &[
    ("host", Want::Str),
    ("port", Want::Num),
    ("user", Want::Str),
    ("identity_file", Want::Str),
    ("known_hosts_file", Want::Str),
    ("ssh_config_file", Want::Str),
    ("ssh_options", Want::Table),
    ("multiplex", Want::Bool),
    ("ssh_command", Want::Str),
];

/// Every key of `t` is in one of `schemas`, with a value of its type.
/// `unknown(name)` and `wrong(name, want, got)` word the messages.
fn check_keys(
    lua: &Lua,
    t: &Table,
    schemas: &[Schema],
    unknown: impl Fn(&str) -> String,
    wrong: impl Fn(&str, &str, &str) -> String,
) -> Result<(), String> {
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        let name = key_repr(lua, &k);
        let want = match &k {
            Value::String(_) => schemas.iter().flat_map(|s| s.iter()).find(|(n, _)| *n == name).map(|(_, w)| *w),
            _ => None,
        };
        match want {
            None => return Err(unknown(&name)),
            Some(w) if !w.accepts(&v) => return Err(wrong(&name, w.name(), type_of(&v))),
            Some(_) => {}
        }
    }
    Ok(())
}

/// `{ NAME = value }` (names and values strings or numbers) as a list of
/// entries, each checked by the core's rule.
fn env_table(lua: &Lua, t: &Table, key: &str) -> Result<Option<Vec<(Bytes, Bytes)>>, String> {
    let env: Table = match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => return Ok(None),
        Value::Table(e) => e,
        v => return Err(format!("{key} must be a table (got {})", type_of(&v))),
    };
    let mut out = Vec::new();
    for pair in env.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        let name = number_or_text(lua, &k).ok_or_else(|| format!("{key} variable names must be strings (got {})", type_of(&k)))?;
        let value = number_or_text(lua, &v).ok_or_else(|| {
            format!("{key} value of '{}' must be a string or a number (got {})", command::shown(name.as_bytes()), type_of(&v))
        })?;
        command::validate_env_entry(key, &name, &value)?;
        out.push((name, value));
    }
    Ok(Some(out))
}

/// A string, or a number as Lua's `tostring` writes it (`2.0` on 5.4, `2`
/// on LuaJIT: what the caller would get by converting it themselves).
fn number_or_text(lua: &Lua, v: &Value) -> Option<Bytes> {
    match v {
        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(v.clone()).ok().flatten().map(|s| OsString::from_vec(s.as_bytes().to_vec()))
        }
        _ => None,
    }
}

/// A list of strings: `{ "a", "b" }`, nothing else in the table.
fn text_list(lua: &Lua, t: &Table, key: &str) -> Result<Option<Vec<Bytes>>, String> {
    let list = match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => return Ok(None),
        Value::Table(l) => l,
        v => return Err(format!("{key} must be a table (got {})", type_of(&v))),
    };
    let values = list_values(lua, &list).map_err(|k| format!("{key} must be a list (found key {k})"))?;
    values.into_iter().enumerate().map(|(i, v)| text_item(lua, v, key, i + 1)).collect::<Result<_, _>>().map(Some)
}

/// One of stdin/stdout/stderr: a mode name, `{ path =, append = }`, a Lua
/// file, or (stdin only) another process's output stream (`stream`, which
/// the shim unwrapped from its handle), handed over once the process is
/// prepared (see the `exec` method).
fn stdio(
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
                format!(
                    "option {key} must be \"pipe\", \"socket\", \"null\", \"inherit\"{}, a file or {{ path = ... }} (got \"{mode}\")",
                    if key == "stderr" { ", \"stdout\"" } else { "" }
                )
            })
        }
        Value::Table(p) => Ok((Stdio::File, Some(path_redirect(&p, key)?), None)),
        // (A stream handle arrives unwrapped, as `stream`, from the shim.)
        v @ Value::UserData(_) => {
            let fd = lua_file_fd(lua, v, key)?;
            Ok((Stdio::File, Some(Redirect::Fd(Arc::new(fd))), None))
        }
        other => Err(format!("option {key} must be a string, a file or a table (got {})", type_of(&other))),
    }
}

/// Floats at or above this may not hold the whole number the caller wrote.
const EXACT_FLOAT: f64 = 1e15;

/// `v` as a whole number from `min` to `max`: a Lua integer, or a float
/// without fraction (below EXACT_FLOAT); `None` for anything else.
pub fn whole_number(v: &Value, min: i64, max: i64) -> Option<i64> {
    match *v {
        Value::Integer(n) if (min..=max).contains(&n) => Some(n),
        Value::Number(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 && n < EXACT_FLOAT => Some(n as i64),
        _ => None,
    }
}

/// The window sizes a terminal takes (rows and columns), for `pty` and
/// `process:resize`.
const TERMINAL_SIZE: (i64, i64) = (1, 65535);

/// "whole number from 1 to 65535": the words of TERMINAL_SIZE in messages.
fn terminal_size_words() -> String {
    format!("whole number from {} to {}", TERMINAL_SIZE.0, TERMINAL_SIZE.1)
}

/// `process:resize(rows, cols)`: each a whole number within TERMINAL_SIZE.
pub fn terminal_size(lua: &Lua, rows: Value, cols: Value) -> Result<(u16, u16), BadArg> {
    let one = |v: &Value, arg: i64| {
        whole_number(v, TERMINAL_SIZE.0, TERMINAL_SIZE.1).map(|n| n as u16).ok_or_else(|| {
            BadArg::at(arg)(format!("{} expected, got {}", terminal_size_words(), shown(lua, v)))
        })
    };
    Ok((one(&rows, 1)?, one(&cols, 2)?))
}

/// What a signal argument names, or why it names none.
pub enum SignalArg {
    Number(i32),
    /// A number that is no signal (outside 1-64, or not whole): an
    /// operational error (`nil, message`).
    Invalid(String),
    /// An unknown name or another type: a bad argument (raised).
    Bad(String),
}

/// A signal given by number (sys::SIGNAL_NUMBERS) or by name ("TERM", "SIGTERM", "term";
/// the names are sys::SIGNALS).
pub fn signal(lua: &Lua, v: &Value) -> SignalArg {
    match v {
        Value::String(s) => {
            let name = s.to_string_lossy().to_ascii_uppercase();
            let bare = name.strip_prefix("SIG").unwrap_or(&name);
            match sys::SIGNALS.iter().find(|(_, n)| *n == bare) {
                Some((n, _)) => SignalArg::Number(*n),
                None => SignalArg::Bad(format!("unknown signal name '{}'", command::shown(&s.as_bytes()))),
            }
        }
        Value::Integer(_) | Value::Number(_) => match whole_number(v, *sys::SIGNAL_NUMBERS.start() as i64, *sys::SIGNAL_NUMBERS.end() as i64) {
            Some(n) => SignalArg::Number(n as i32),
            None => SignalArg::Invalid(format!("invalid signal number {}", shown(lua, v))),
        },
        other => SignalArg::Bad(format!("number or signal name expected, got {}", type_of(other))),
    }
}

/// A value as Lua's `tostring` shows it (numbers: `1e+300`, `2.0` on 5.3
/// and 5.4, `-nan`), else its type's name: one way to show a value in
/// every message.
fn shown(lua: &Lua, v: &Value) -> String {
    match v {
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => match lua.coerce_string(v.clone()) {
            Ok(Some(s)) => s.to_string_lossy().to_string(),
            _ => n.to_string(),
        },
        other => type_of(other).to_string(),
    }
}

/// `pty = true` (24 x 80) or `pty = { rows =, cols = }`.
fn pty_size(lua: &Lua, t: &Table) -> Result<Option<(u16, u16)>, String> {
    const DEFAULT: (u16, u16) = (24, 80);
    let size = |p: &Table, name: &str| -> Result<Option<u16>, String> {
        let expected = format!("option pty: {name} must be a {}", terminal_size_words());
        Ok(opt_whole(lua, p, name, TERMINAL_SIZE, &expected)?.map(|n| n as u16))
    };
    match t.raw_get::<Value>("pty").map_err(lua_err)? {
        Value::Nil | Value::Boolean(false) => Ok(None),
        Value::Boolean(true) => Ok(Some(DEFAULT)),
        Value::Table(p) => {
            for pair in p.pairs::<Value, Value>() {
                let (k, _) = pair.map_err(lua_err)?;
                if !matches!(k.as_string().map(|s| s.to_string_lossy()).as_deref(), Some("rows" | "cols")) {
                    return Err("option pty: a table takes rows and cols only".into());
                }
            }
            let rows = size(&p, "rows")?.unwrap_or(DEFAULT.0);
            let cols = size(&p, "cols")?.unwrap_or(DEFAULT.1);
            Ok(Some((rows, cols)))
        }
        v => Err(format!("option pty must be true or {{ rows =, cols = }} (got {})", type_of(&v))),
    }
}

/// `{ path = "out.log", append = true }`: opened when the child starts.
fn path_redirect(t: &Table, key: &str) -> Result<Redirect, String> {
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
    .map_err(lua_err)?;
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

/// The command of `exec`: a shell string, or a list of program and
/// arguments; checked by the core's rule (`CommandSpec::validate`).
pub fn command(lua: &Lua, v: Value) -> Result<CommandSpec, BadArg> {
    let spec = match v {
        Value::String(_) => CommandSpec::Shell(text(v, "command").map_err(BadArg::at(1))?),
        Value::Table(t) => {
            let values = list_values(lua, &t).map_err(|k| BadArg::at(1)(format!("must be a list of strings (found key {k})")))?;
            let args = values.into_iter().enumerate().map(|(i, v)| text_item(lua, v, "command", i + 1));
            CommandSpec::Argv(args.collect::<Result<_, _>>().map_err(BadArg::at(1))?)
        }
        other => return Err(BadArg::at(1)(format!("string or table of strings expected, got {}", type_of(&other)))),
    };
    spec.validate().map_err(BadArg::at(1))?;
    Ok(spec)
}

/// What the shim passes beside the options table: the timeout it parsed
/// (the time module owns durations) and the raw streams it unwrapped from
/// stream handles given as stdin, stdout or stderr.
pub struct ShimExtras {
    pub timeout: Option<f64>,
    pub streams: [Option<AnyUserData>; 3],
    /// Called for `run`, whose own options (input, check) are allowed.
    pub for_run: bool,
}

/// The options of `exec`, and (stdin = another process's stream) the stream
/// to hand over once the process is prepared.
pub fn exec_options(lua: &Lua, v: Value, extras: ShimExtras) -> Result<(ExecOptions, Option<AnyUserData>), BadArg> {
    exec_options_table(lua, v, extras).map_err(BadArg::at(2))
}

fn exec_options_table(lua: &Lua, v: Value, extras: ShimExtras) -> Result<(ExecOptions, Option<AnyUserData>), String> {
    let t = match v {
        Value::Nil if extras.for_run => return Ok((ExecOptions { stdin: Stdio::Null, ..Default::default() }, None)),
        Value::Nil => return Ok((ExecOptions::default(), None)),
        Value::Table(t) => t,
        other => return Err(format!("table expected, got {}", type_of(&other))),
    };
    let schemas: &[Schema] = if extras.for_run { &[EXEC_OPTIONS, RUN_OPTIONS] } else { &[EXEC_OPTIONS] };
    check_keys(
        lua,
        &t,
        schemas,
        |k| {
            let hint = if matches!(k, "workdir" | "cwd" | "dir") { " (did you mean 'work_dir'?)" } else { "" };
            format!("unknown option '{k}'{hint}")
        },
        |k, want, got| format!("option {k} must be a {want} (got {got})"),
    )?;
    let [s_in, s_out, s_err] = extras.streams;
    let (mut stdin, in_file, in_stream) = stdio(lua, &t, "stdin", s_in)?;
    // `run` without input: nothing will ever be written, so the child reads
    // /dev/null (end of file at once, as vim.system does) instead of a pipe
    // that would be closed at once (also without options, above). A pty
    // keeps its terminal.
    let unset = |k: &str| t.raw_get::<Value>(k).map(|v| matches!(v, Value::Nil | Value::Boolean(false))).unwrap_or(false);
    if extras.for_run && in_stream.is_none() && unset("stdin") && unset("input") && unset("pty") {
        stdin = Stdio::Null;
    }
    // `input` is written to a pipe: with stdin elsewhere it would be lost.
    if extras.for_run && !unset("input") && !matches!(stdin, Stdio::Pipe | Stdio::Socket) {
        let given = if in_stream.is_some() { "another process's stream".to_string() } else {
            match t.raw_get::<Value>("stdin").map_err(lua_err)? {
                Value::String(s) => format!("\"{}\"", command::shown(&s.as_bytes())),
                Value::Table(_) => "a path".to_string(),
                _ => "a file".to_string(),
            }
        };
        return Err(format!("option input cannot be used with option stdin = {given}: input is written to the child's stdin pipe"));
    }
    let (stdout, out_file, _) = stdio(lua, &t, "stdout", s_out)?;
    let (stderr, err_file, _) = stdio(lua, &t, "stderr", s_err)?;
    let opts = ExecOptions {
        work_dir: opt_text(&t, "work_dir")?.map(PathBuf::from),
        env: env_table(lua, &t, "env")?,
        stdin,
        stdout,
        stderr,
        redirect: [in_file, out_file, err_file],
        detach: opt_bool(&t, "detach")?.unwrap_or(false),
        pty: pty_size(lua, &t)?,
        process_group: opt_bool(&t, "process_group")?,
        timed: extras.timeout.is_some(),
        buffer_limit: opt_whole(lua, &t, "buffer_limit", (1, i64::MAX), "option buffer_limit must be a whole number of bytes >= 1")?
            .map(|n| n as usize),
        inherit_env: opt_bool(&t, "inherit_env")?,
    };
    Ok((opts, in_stream))
}

/// A resource definition (`exec.registry.define(id, config)`), converted.
pub enum Definition {
    Native(String, ExecutorConfig),
    Ssh(String, ExecutorConfig, SshTarget),
    /// A kind this library does not run: recorded, config unchecked.
    Other(String, String),
}

pub fn definition(lua: &Lua, id: Value, config: Value) -> Result<Definition, BadArg> {
    let id = match id {
        Value::String(s) => s.to_str().map_err(|_| BadArg::at(1)("must be UTF-8 text".into()))?.to_string(),
        other => return Err(BadArg::at(1)(format!("string expected, got {}", type_of(&other)))),
    };
    if id.is_empty() {
        return Err(BadArg::at(1)("must not be empty".into()));
    }
    let t = match config {
        Value::Table(t) => t,
        other => return Err(BadArg::at(2)(format!("table expected, got {}", type_of(&other)))),
    };
    let kind = match t.raw_get::<Value>("kind").map_err(lua_err).map_err(BadArg::at(2))? {
        Value::String(s) if !s.as_bytes().is_empty() => s.to_string_lossy().to_string(),
        other => {
            let got = if matches!(other, Value::String(_)) { "empty string" } else { type_of(&other) };
            return Err(BadArg::at(2)(format!("config.kind must be a non-empty string (got {got})")));
        }
    };
    let schemas: &[Schema] = match kind.as_str() {
        NATIVE_KIND => &[&[("kind", Want::Str)], NATIVE_OPTIONS],
        SSH_KIND => &[&[("kind", Want::Str)], NATIVE_OPTIONS, SSH_OPTIONS],
        _ => return Ok(Definition::Other(id, kind)),
    };
    check_keys(
        lua,
        &t,
        schemas,
        |k| format!("unknown option '{k}' for kind {kind}"),
        |k, want, got| format!("{k} must be a {want} (got {got})"),
    )
    .map_err(BadArg::at(2))?;
    let config = executor_config(lua, &t).map_err(BadArg::at(2))?;
    if kind == SSH_KIND {
        let target = ssh_target(lua, &t).map_err(BadArg::at(2))?;
        return Ok(Definition::Ssh(id, config, target));
    }
    Ok(Definition::Native(id, config))
}

fn executor_config(lua: &Lua, t: &Table) -> Result<ExecutorConfig, String> {
    let max = opt_whole(lua, t, "max_processes", (1, i64::MAX), "max_processes must be a whole number of at least 1")?;
    Ok(ExecutorConfig {
        default_work_dir: opt_text(t, "default_work_dir")?.map(PathBuf::from),
        default_env: env_table(lua, t, "default_env")?,
        policy: Policy {
            whitelist: text_list(lua, t, "command_whitelist")?.unwrap_or_default(),
            allowed_env: text_list(lua, t, "allowed_env")?,
            work_dir_within: opt_text(t, "work_dir_within")?.map(PathBuf::from),
        },
        max_processes: max.map(|n| n as usize),
        queue: opt_bool(t, "queue")?.unwrap_or(false),
        inherit_env: opt_bool(t, "inherit_env")?.unwrap_or(false),
        allow_inherit: opt_bool(t, "allow_inherit")?.unwrap_or(false),
    })
}

/// The connection fields of an `exec.ssh` resource.
fn ssh_target(lua: &Lua, t: &Table) -> Result<SshTarget, String> {
    let port = opt_whole(lua, t, "port", (1, 65535), "port must be a whole number from 1 to 65535")?.map(|n| n as u16);
    let mut options = Vec::new();
    if let Value::Table(o) = t.raw_get::<Value>("ssh_options").map_err(lua_err)? {
        for pair in o.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(lua_err)?;
            let bad = || "ssh_options must map option names to strings, numbers or booleans".to_string();
            let k = match k {
                Value::String(s) => OsString::from_vec(s.as_bytes().to_vec()),
                _ => return Err(bad()),
            };
            let v = match v {
                Value::Boolean(b) => Bytes::from(if b { "yes" } else { "no" }),
                v => number_or_text(lua, &v).ok_or_else(bad)?,
            };
            options.push((k, v));
        }
        // Lua tables have no order; ssh takes the first value of an option.
        options.sort();
    }
    let target = SshTarget {
        host: opt_text(t, "host")?.ok_or("host is required for kind exec.ssh")?,
        port,
        user: opt_text(t, "user")?,
        identity_file: opt_text(t, "identity_file")?,
        known_hosts_file: opt_text(t, "known_hosts_file")?,
        config_file: opt_text(t, "ssh_config_file")?,
        ssh_options: options,
        multiplex: opt_bool(t, "multiplex")?.unwrap_or(true),
        program: opt_text(t, "ssh_command")?,
    };
    target.validate()?;
    Ok(target)
}
