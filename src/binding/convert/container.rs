//! The container fields of an `exec.docker` resource, converted (each
//! value's own rule is the core's: `ContainerConfig::validate`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use mlua::{Lua, Table, Value};

use super::{env_table, lua_err, number_or_text, opt_bool, opt_text, opt_whole, shown, text_list, type_of, Schema, Want};
use crate::core::command::{self, Bytes};
use crate::core::remote::container::ContainerConfig;

/// What an `exec.docker` resource adds to the native options.
pub(super) const OPTIONS: Schema = &[
    ("image", Want::Str),
    ("container", Want::Str),
    ("engine", Want::Str),
    ("engine_args", Want::Table),
    ("engine_env", Want::Table),
    ("host", Want::Str),
    ("network_mode", Want::Str),
    ("volumes", Want::Table),
    ("user", Want::Str),
    ("memory_limit", Want::Any),
    ("cpu_quota", Want::Num),
    ("pids_limit", Want::Num),
    ("read_only_rootfs", Want::Bool),
    ("no_new_privileges", Want::Bool),
    ("cap_drop", Want::Table),
    ("cap_add", Want::Table),
    ("tmpfs", Want::Table),
    ("auto_remove", Want::Bool),
];

/// `memory_limit`: bytes (a whole number), or a string such as "256m".
fn memory_limit(lua: &Lua, t: &Table) -> Result<Option<Bytes>, String> {
    let expected = "memory_limit must be a whole number of bytes or a string such as \"256m\"";
    match t.raw_get::<Value>("memory_limit").map_err(lua_err)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(OsString::from_vec(s.as_bytes().to_ascii_lowercase()))),
        v @ (Value::Integer(_) | Value::Number(_)) => match super::whole_number(&v, 1, i64::MAX) {
            Some(n) => Ok(Some(n.to_string().into())),
            None => Err(format!("{expected} (got {})", shown(lua, &v))),
        },
        v => Err(format!("{expected} (got {})", type_of(&v))),
    }
}

/// `tmpfs`: Wippy's map of path to options (`{ ["/tmp"] = "size=64m" }`),
/// or a list of "path[:options]" strings.
fn tmpfs(lua: &Lua, t: &Table) -> Result<Vec<Bytes>, String> {
    let m = match t.raw_get::<Value>("tmpfs").map_err(lua_err)? {
        Value::Table(m) => m,
        _ => return Ok(Vec::new()),
    };
    if m.raw_len() > 0 {
        return Ok(text_list(lua, t, "tmpfs")?.unwrap_or_default());
    }
    let mut out = Vec::new();
    for pair in m.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        let path = match k {
            Value::String(s) => s.as_bytes().to_vec(),
            other => return Err(format!("tmpfs must map paths to options, or list \"path:options\" (found a key of type {})", type_of(&other))),
        };
        let opts = number_or_text(lua, &v).ok_or_else(|| {
            format!("tmpfs options of '{}' must be a string (got {})", command::shown(&path), type_of(&v))
        })?;
        let mut entry = path;
        if !opts.is_empty() {
            entry.push(b':');
            entry.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(opts.as_os_str()));
        }
        out.push(OsString::from_vec(entry));
    }
    // Lua tables have no order: mounts in a stable one.
    out.sort();
    Ok(out)
}

/// The container fields of `t` (types were checked against OPTIONS).
pub(super) fn config(lua: &Lua, t: &Table) -> Result<ContainerConfig, String> {
    let c = ContainerConfig {
        image: opt_text(t, "image")?,
        container: opt_text(t, "container")?,
        engine: opt_text(t, "engine")?,
        engine_args: text_list(lua, t, "engine_args")?.unwrap_or_default(),
        engine_env: env_table(lua, t, "engine_env")?,
        host: opt_text(t, "host")?,
        network_mode: opt_text(t, "network_mode")?,
        volumes: text_list(lua, t, "volumes")?.unwrap_or_default(),
        user: opt_text(t, "user")?,
        memory_limit: memory_limit(lua, t)?,
        cpu_quota: opt_whole(lua, t, "cpu_quota", (1000, i64::MAX), "cpu_quota must be a whole number of microseconds per 100 ms, at least 1000")?,
        pids_limit: opt_whole(lua, t, "pids_limit", (1, i64::MAX), "pids_limit must be a whole number of at least 1")?,
        read_only_rootfs: opt_bool(t, "read_only_rootfs")?,
        no_new_privileges: opt_bool(t, "no_new_privileges")?,
        cap_drop: text_list(lua, t, "cap_drop")?.unwrap_or_default(),
        cap_add: text_list(lua, t, "cap_add")?.unwrap_or_default(),
        tmpfs: tmpfs(lua, t)?,
        auto_remove: opt_bool(t, "auto_remove")?,
    };
    c.validate()?;
    Ok(c)
}
