//! The process attributes (core/os/spawn/attrs.rs): limits, identity,
//! umask, niceness and death with the parent, as options of `exec` and as
//! a resource's ceilings; `exec`'s `fds` and `argv0`. Names of users and
//! groups are resolved to numbers here, when the option is given.

use std::os::fd::RawFd;
use std::path::PathBuf;

use mlua::{AnyUserData, Lua, Table, Value};

use super::stdio::lua_file_fd;
use super::*;
use crate::core::os::spawn::attrs::{self, Attrs, Limit, PassedFd, MAX_TARGET_FD};
use crate::core::os::spawn::Redirect;

/// What `exec` and a native resource both take (the resource's value is a
/// ceiling).
pub(super) const ATTR_OPTIONS: Schema = &[
    ("rlimits", Want::Table),
    ("uid", Want::Any),
    ("gid", Want::Any),
    ("groups", Want::Table),
    ("umask", Want::Any),
    ("nice", Want::Num),
    ("kill_on_parent_death", Want::Bool),
];

/// What only `exec` takes: per process, no resource has them.
pub(super) const EXEC_ATTR_OPTIONS: Schema = &[("argv0", Want::Str), ("fds", Want::Table)];

/// The attributes in `t` (an options table, or a resource definition);
/// `label` starts each message ("option " or "").
pub(super) fn attrs(lua: &Lua, t: &Table, label: &str) -> Result<Attrs, String> {
    let mut a = Attrs::default();
    if let Value::Table(r) = t.raw_get::<Value>("rlimits").map_err(lua_err)? {
        for pair in r.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(lua_err)?;
            let names: Vec<&str> = Limit::ALL.iter().map(|l| l.name()).collect();
            let limit = match &k {
                Value::String(s) => Limit::named(&s.to_string_lossy()),
                _ => None,
            }
            .ok_or_else(|| format!("{label}rlimits: unknown limit '{}' (one of {})", key_repr(lua, &k), names.join(", ")))?;
            a.set_rlimit(limit, rlimit_value(lua, limit, &v, label)?);
        }
    }
    a.uid = id_value(lua, t, "uid", label)?;
    a.gid = id_value(lua, t, "gid", label)?;
    if let Value::Table(g) = t.raw_get::<Value>("groups").map_err(lua_err)? {
        let values = list_values(lua, &g).map_err(|k| format!("{label}groups must be a list (found key {k})"))?;
        let mut ids = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            ids.push(one_id(lua, v, true, &format!("{label}groups[{}]", i + 1))?);
        }
        a.groups = Some(ids);
    }
    a.umask = match t.raw_get::<Value>("umask").map_err(lua_err)? {
        Value::Nil => None,
        v => Some(umask_value(lua, &v).ok_or_else(|| {
            format!(
                "{label}umask must be a whole number from 0 to 511 (0777) or a string of octal digits such as \"077\" (got {})",
                shown_value(lua, &v)
            )
        })?),
    };
    a.nice = opt_whole(lua, t, "nice", (-20, 19), &format!("{label}nice must be a whole number from -20 to 19"))?.map(|n| n as i32);
    a.kill_on_parent_death = opt_bool(t, "kill_on_parent_death")?;
    Ok(a)
}

/// A value as a message shows it: a string quoted, a number as Lua shows it.
fn shown_value(lua: &Lua, v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", command::shown(&s.as_bytes())),
        other => shown(lua, other),
    }
}

/// One limit's value: a whole number (seconds for cpu, descriptors for
/// nofile, processes for nproc, bytes for the rest), or for a size a
/// string such as "256m".
fn rlimit_value(lua: &Lua, l: Limit, v: &Value, label: &str) -> Result<u64, String> {
    let what = match l {
        Limit::Cpu => "a whole number of seconds >= 0",
        Limit::Nofile => "a whole number of descriptors >= 0",
        Limit::Nproc => "a whole number of processes >= 0",
        _ => "a whole number of bytes >= 0 or a size such as \"256m\"",
    };
    let got = match v {
        Value::String(s) if l.is_size() => attrs::parse_size(&s.as_bytes()),
        Value::Integer(_) | Value::Number(_) => whole_number(v, 0, i64::MAX).map(|n| n as u64),
        _ => None,
    };
    got.ok_or_else(|| format!("{label}rlimits.{} must be {what} (got {})", l.name(), shown_value(lua, v)))
}

/// `uid` or `gid`: a number or a name, resolved now.
fn id_value(lua: &Lua, t: &Table, key: &str, label: &str) -> Result<Option<u32>, String> {
    match t.raw_get::<Value>(key).map_err(lua_err)? {
        Value::Nil => Ok(None),
        v => one_id(lua, &v, key == "gid", &format!("{label}{key}")).map(Some),
    }
}

/// A user (or, `group`, a group) given by number or by name.
fn one_id(lua: &Lua, v: &Value, group: bool, what: &str) -> Result<u32, String> {
    let kind = if group { "group" } else { "user" };
    match v {
        Value::String(s) => {
            let name = s.as_bytes();
            let r = if group { attrs::group_id(&name) } else { attrs::user_id(&name) };
            r.map_err(|e| format!("{what}: {e}"))
        }
        // (uid_t and gid_t -1 means "unchanged" to the system: not an id.)
        Value::Integer(_) | Value::Number(_) => whole_number(v, 0, u32::MAX as i64 - 1)
            .map(|n| n as u32)
            .ok_or_else(|| format!("{what} must be a {kind} name or a whole number from 0 to 4294967294 (got {})", shown(lua, v))),
        other => Err(format!("{what} must be a {kind} name or a number (got {})", type_of(other))),
    }
}

/// A umask: a number (0 to 0o777), or its octal digits as a string.
fn umask_value(lua: &Lua, v: &Value) -> Option<u32> {
    let _ = lua;
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            if b.is_empty() || b.len() > 4 || !b.iter().all(|c| (b'0'..=b'7').contains(c)) {
                return None;
            }
            u32::from_str_radix(std::str::from_utf8(&b).ok()?, 8).ok().filter(|m| *m <= 0o777)
        }
        _ => whole_number(v, 0, 0o777).map(|n| n as u32),
    }
}

/// `argv0`: the name the program sees.
pub(super) fn argv0(t: &Table) -> Result<Option<Bytes>, String> {
    match opt_text(t, "argv0")? {
        Some(a) if a.is_empty() || a.as_encoded_bytes().contains(&0) => {
            Err("option argv0 must be a non-empty string without NUL bytes".into())
        }
        other => Ok(other),
    }
}

/// What an `fds` value may be, as messages say it.
const FD_TAKES: &str = "a file, another process's output stream or { path = ... }";

/// `fds = { [3] = <file, stream or { path = }>, ... }`: what the child
/// gets at each number. Streams (another process's output, unwrapped by
/// the shim into `streams`: number -> raw stream) are handed over once the
/// process is prepared; they come back apart.
#[allow(clippy::type_complexity)]
pub(super) fn fds(lua: &Lua, t: &Table, streams: Option<Table>) -> Result<(Vec<PassedFd>, Vec<(RawFd, AnyUserData)>), String> {
    let mut out = Vec::new();
    let mut handed = Vec::new();
    let Value::Table(f) = t.raw_get::<Value>("fds").map_err(lua_err)? else { return Ok((out, handed)) };
    for pair in f.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        let target = whole_number(&k, 3, MAX_TARGET_FD as i64).ok_or_else(|| {
            format!("option fds: keys must be descriptor numbers from 3 to {MAX_TARGET_FD} (found key {})", key_repr(lua, &k))
        })? as RawFd;
        let name = format!("fds[{target}]");
        if let Some(ud) = streams.as_ref().map(|s| s.raw_get::<Option<AnyUserData>>(target)).transpose().map_err(lua_err)?.flatten() {
            handed.push((target, ud));
            continue;
        }
        let passed = match v {
            Value::Table(p) => fd_path(&p, &name, target)?,
            v @ Value::UserData(_) => {
                let fd = lua_file_fd(lua, v, &name, FD_TAKES)?;
                PassedFd { target, source: Redirect::Fd(std::sync::Arc::new(fd)), write: false }
            }
            other => return Err(format!("option {name} must be {FD_TAKES} (got {})", type_of(&other))),
        };
        out.push(passed);
    }
    out.sort_by_key(|p| p.target);
    handed.sort_by_key(|(t, _)| *t);
    Ok((out, handed))
}

/// `{ path = "f" }` (read), `{ path = "f", write = true }` (created,
/// truncated), `{ path = "f", append = true }`: opened when the child starts.
fn fd_path(t: &Table, name: &str, target: RawFd) -> Result<PassedFd, String> {
    let (mut path, mut write, mut append) = (None, false, false);
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        match (k.as_string().map(|s| s.to_string_lossy()).as_deref(), v) {
            (Some("path"), Value::String(p)) => path = Some(PathBuf::from(std::ffi::OsString::from_vec(p.as_bytes().to_vec()))),
            (Some("write"), Value::Boolean(b)) => write = b,
            (Some("append"), Value::Boolean(b)) => append = b,
            (Some(field @ ("path" | "write" | "append")), v) => {
                let want = if field == "path" { "string" } else { "boolean" };
                return Err(format!("option {name}: {field} must be a {want} (got {})", type_of(&v)));
            }
            _ => {
                let field = match &k {
                    Value::String(s) => format!("'{}'", command::shown(&s.as_bytes())),
                    other => format!("of type {}", type_of(other)),
                };
                return Err(format!("option {name}: unknown field {field} (use path, write and append)"));
            }
        }
    }
    match path {
        Some(p) if !p.as_os_str().is_empty() && !p.as_os_str().as_encoded_bytes().contains(&0) => {
            Ok(PassedFd { target, source: Redirect::Path { path: p, append, within: None }, write: write || append })
        }
        Some(_) => Err(format!("option {name}: path must be a non-empty string without NUL bytes")),
        None => Err(format!("option {name}: a table needs a path ({{ path = \"file\" }})")),
    }
}

/// `run`'s `max_output`: bytes kept of each output.
pub(super) fn max_output(lua: &Lua, t: &Table) -> Result<Option<usize>, String> {
    Ok(opt_whole(lua, t, "max_output", (0, i64::MAX), "option max_output must be a whole number of bytes >= 0")?.map(|n| n as usize))
}
