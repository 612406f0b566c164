//! Lua values to core types: every check of an argument or option, and
//! its message, lives here (the shim passes what the caller gave, as is).
//! Each conversion says what was wrong without naming the function: the
//! shim adds `bad argument #N (name) to 'function':` at the caller's line.
//!
//! The parts: the values every conversion shares (here), the command and
//! the options of `exec` and `run` (`exec_options`), the files and streams
//! stdin, stdout and stderr take (`stdio`), and resource definitions
//! (`definition`; an `exec.docker` resource's fields: `container`).

mod attrs;
mod container;
mod definition;
mod exec_options;
mod stdio;

pub use definition::{definition, Definition};
pub use exec_options::{command, exec_options, Converted, ShimExtras};

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use mlua::{Lua, Table, Value};

use crate::core::command::{self, Bytes};
use crate::core::os::sys;

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
}

pub(super) fn lua_err(e: mlua::Error) -> String {
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
pub(super) fn key_repr(lua: &Lua, k: &Value) -> String {
    match k {
        Value::String(s) => command::shown(&s.as_bytes()),
        other => shown(lua, other),
    }
}

/// A Lua string as the bytes it holds (Unix arguments, paths and
/// environments are bytes, not UTF-8).
pub(super) fn text(v: Value, what: &str) -> Result<Bytes, String> {
    text_named(v, || what.to_owned())
}

/// `text`, with the value's name made only if the message needs it.
pub(super) fn text_named(v: Value, what: impl FnOnce() -> String) -> Result<Bytes, String> {
    match v {
        Value::String(s) => Ok(OsString::from_vec(s.as_bytes().to_vec())),
        other => Err(format!("{} must be a string (got {})", what(), type_of(&other))),
    }
}

pub(super) fn opt_text(t: &Table, key: &str) -> Result<Option<Bytes>, String> {
    match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => Ok(None),
        v => text(v, key).map(Some),
    }
}

pub(super) fn opt_bool(t: &Table, key: &str) -> Result<Option<bool>, String> {
    t.raw_get::<Option<bool>>(key).map_err(lua_err)
}

/// `t[key]` as a whole number from `min` to `max` (see whole_number), or
/// nil; otherwise "`expected` (got X)".
pub(super) fn opt_whole(lua: &Lua, t: &Table, key: &str, (min, max): (i64, i64), expected: &str) -> Result<Option<i64>, String> {
    match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => Ok(None),
        v => whole_number(&v, min, max).map(Some).ok_or_else(|| format!("{expected} (got {})", shown(lua, &v))),
    }
}

/// The values of `t` in order if it is a list (keys 1..n only), else the
/// first other key, as messages show it. (The vector is as long as the
/// table's own array part, which holds that many slots already.)
pub(super) fn list_values(lua: &Lua, t: &Table) -> Result<Vec<Value>, String> {
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
pub(super) fn text_item(lua: &Lua, v: Value, key: &str, i: usize) -> Result<Bytes, String> {
    match v {
        Value::Integer(_) | Value::Number(_) => number_or_text(lua, &v).ok_or_else(|| format!("{key}[{i}] cannot be shown as text")),
        Value::String(_) => text_named(v, || format!("{key}[{i}]")),
        other => Err(format!("{key}[{i}] must be a string or a number (got {})", type_of(&other))),
    }
}

/// The Lua type an option takes (`Any`: its own conversion checks it).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Want {
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

pub(super) type Schema = &'static [(&'static str, Want)];

/// Every key of `t` is in one of `schemas`, with a value of its type.
/// `unknown(name)` and `wrong(name, want, got)` word the messages.
pub(super) fn check_keys(
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
pub(super) fn env_table(lua: &Lua, t: &Table, key: &str) -> Result<Option<command::Env>, String> {
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
        out.push((name, value));
    }
    command::Env::new(key, out).map(Some)
}

/// A string, or a number as Lua's `tostring` writes it (`2.0` on 5.4, `2`
/// on LuaJIT: what the caller would get by converting it themselves).
pub(super) fn number_or_text(lua: &Lua, v: &Value) -> Option<Bytes> {
    match v {
        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(v.clone()).ok().flatten().map(|s| OsString::from_vec(s.as_bytes().to_vec()))
        }
        _ => None,
    }
}

/// A list of strings: `{ "a", "b" }`, nothing else in the table.
pub(super) fn text_list(lua: &Lua, t: &Table, key: &str) -> Result<Option<Vec<Bytes>>, String> {
    let list = match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => return Ok(None),
        Value::Table(l) => l,
        v => return Err(format!("{key} must be a table (got {})", type_of(&v))),
    };
    let values = list_values(lua, &list).map_err(|k| format!("{key} must be a list (found key {k})"))?;
    values.into_iter().enumerate().map(|(i, v)| text_item(lua, v, key, i + 1)).collect::<Result<_, _>>().map(Some)
}

/// Floats at or above this may not hold the whole number the caller wrote.
pub(super) const EXACT_FLOAT: f64 = 1e15;

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
pub(super) const TERMINAL_SIZE: (i64, i64) = (1, 65535);

/// "whole number from 1 to 65535": the words of TERMINAL_SIZE in messages.
pub(super) fn terminal_size_words() -> String {
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
    /// An unknown name or another type: a bad argument (raised), the
    /// first of the method it was given to.
    Bad(BadArg),
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
                None => SignalArg::Bad(BadArg::at(1)(format!("unknown signal name '{}'", command::shown(&s.as_bytes())))),
            }
        }
        Value::Integer(_) | Value::Number(_) => match whole_number(v, *sys::SIGNAL_NUMBERS.start() as i64, *sys::SIGNAL_NUMBERS.end() as i64) {
            Some(n) => SignalArg::Number(n as i32),
            None => SignalArg::Invalid(format!("invalid signal number {}", shown(lua, v))),
        },
        other => SignalArg::Bad(BadArg::at(1)(format!("number or signal name expected, got {}", type_of(other)))),
    }
}

/// A value as Lua's `tostring` shows it (numbers: `1e+300`, `2.0` on 5.3
/// and 5.4, `-nan`), else its type's name: one way to show a value in
/// every message.
pub(super) fn shown(lua: &Lua, v: &Value) -> String {
    match v {
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => match lua.coerce_string(v.clone()) {
            Ok(Some(s)) => s.to_string_lossy().to_string(),
            _ => n.to_string(),
        },
        other => type_of(other).to_string(),
    }
}
