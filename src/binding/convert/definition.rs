//! Resource definitions (`exec.registry.define(id, config)`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use mlua::{Lua, Table, Value};

use super::*;
use crate::core::policy::Policy;
use crate::core::registry::{ExecutorConfig, CONTAINER_KIND, NATIVE_KIND, SSH_KIND};
use crate::core::remote::container::ContainerConfig;
use crate::core::remote::ssh::SshTarget;

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

/// A resource definition (`exec.registry.define(id, config)`), converted.
pub enum Definition {
    Native(String, ExecutorConfig),
    Ssh(String, ExecutorConfig, SshTarget),
    Container(String, ExecutorConfig, ContainerConfig),
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
    // Limits and identity are set where a process starts: not for a remote
    // resource (a container has its own: memory_limit, pids_limit, user).
    if kind != NATIVE_KIND {
        for (name, _) in super::attrs::ATTR_OPTIONS {
            if !matches!(t.raw_get::<Value>(*name).map_err(lua_err).map_err(BadArg::at(2))?, Value::Nil) {
                let instead = if kind == CONTAINER_KIND {
                    " (a container's own are memory_limit, pids_limit, cpu_quota and user)"
                } else {
                    ""
                };
                return Err(BadArg::at(2)(format!(
                    "{name} is not an option of kind {kind}: its processes are not started here{instead}"
                )));
            }
        }
    }
    let schemas: &[Schema] = match kind.as_str() {
        NATIVE_KIND => &[&[("kind", Want::Str)], NATIVE_OPTIONS, super::attrs::ATTR_OPTIONS],
        SSH_KIND => &[&[("kind", Want::Str)], NATIVE_OPTIONS, SSH_OPTIONS],
        CONTAINER_KIND => &[&[("kind", Want::Str)], NATIVE_OPTIONS, super::container::OPTIONS],
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
    if kind == CONTAINER_KIND {
        let c = super::container::config(lua, &t).map_err(BadArg::at(2))?;
        return Ok(Definition::Container(id, config, c));
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
        max_processes: max.and_then(|n| std::num::NonZeroUsize::new(n as usize)),
        queue: opt_bool(t, "queue")?.unwrap_or(false),
        inherit_env: opt_bool(t, "inherit_env")?.unwrap_or(false),
        allow_inherit: opt_bool(t, "allow_inherit")?.unwrap_or(false),
        attrs: {
            // (A uid without a gid must name a user whose group can be
            // found, or every start of this resource would fail: said now.)
            let a = super::attrs::attrs(lua, t, "")?;
            a.clone().completed()?;
            a
        },
    })
}

/// The connection fields of an `exec.ssh` resource.
fn ssh_target(lua: &Lua, t: &Table) -> Result<SshTarget, String> {
    let port = opt_whole(lua, t, "port", (1, 65535), "port must be a whole number from 1 to 65535")?
        .and_then(|n| std::num::NonZeroU16::new(n as u16));
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
    Ok(target)
}
