//! The command and the options of `executor:exec` (and so of `exec.run`).

use std::path::PathBuf;

use mlua::{AnyUserData, Lua, Table, Value};

use super::attrs::{ATTR_OPTIONS, EXEC_ATTR_OPTIONS};
use super::stdio::stdio;
use super::*;
use crate::core::command::CommandSpec;
use crate::core::os::spawn::Stdio;
use crate::core::registry::ExecOptions;

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
const RUN_OPTIONS: Schema = &[("input", Want::Str), ("check", Want::Bool), ("max_output", Want::Num)];

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

/// The command of `exec`: a shell string, or a list of program and
/// arguments; checked by the core's rule (made by `CommandSpec::shell` or
/// `CommandSpec::program`, the only place it is stated).
pub fn command(lua: &Lua, v: Value) -> Result<CommandSpec, BadArg> {
    let spec = match v {
        Value::String(_) => CommandSpec::shell(text(v, "command").map_err(BadArg::at(1))?).map_err(BadArg::at(1))?,
        Value::Table(t) => {
            let values = list_values(lua, &t).map_err(|k| BadArg::at(1)(format!("must be a list of strings (found key {k})")))?;
            let args = values.into_iter().enumerate().map(|(i, v)| text_item(lua, v, "command", i + 1));
            CommandSpec::program(args.collect::<Result<_, _>>().map_err(BadArg::at(1))?).map_err(BadArg::at(1))?
        }
        other => return Err(BadArg::at(1)(format!("string or table of strings expected, got {}", type_of(&other)))),
    };
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
    /// The raw streams of stream handles given in `fds`, by number.
    pub fd_streams: Option<Table>,
}

/// What `exec_options` gives: the options, and the streams to hand over
/// once the process is prepared (stdin's, and those of `fds` by number).
pub struct Converted {
    pub opts: ExecOptions,
    pub in_stream: Option<AnyUserData>,
    pub fd_streams: Vec<(std::os::fd::RawFd, AnyUserData)>,
    /// `run`'s max_output.
    pub max_output: Option<usize>,
}

/// The options of `exec`, and (stdin = another process's stream) the stream
/// to hand over once the process is prepared.
pub fn exec_options(lua: &Lua, v: Value, extras: ShimExtras) -> Result<Converted, BadArg> {
    exec_options_table(lua, v, extras).map_err(BadArg::at(2))
}

fn exec_options_table(lua: &Lua, v: Value, extras: ShimExtras) -> Result<Converted, String> {
    let bare = |opts| Ok(Converted { opts, in_stream: None, fd_streams: Vec::new(), max_output: None });
    let t = match v {
        Value::Nil if extras.for_run => return bare(ExecOptions { stdin: Stdio::Null, ..Default::default() }),
        Value::Nil => return bare(ExecOptions::default()),
        Value::Table(t) => t,
        other => return Err(format!("table expected, got {}", type_of(&other))),
    };
    let schemas: &[Schema] = if extras.for_run {
        &[EXEC_OPTIONS, ATTR_OPTIONS, EXEC_ATTR_OPTIONS, RUN_OPTIONS]
    } else {
        &[EXEC_OPTIONS, ATTR_OPTIONS, EXEC_ATTR_OPTIONS]
    };
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
    let (fds, fd_streams) = super::attrs::fds(lua, &t, extras.fd_streams)?;
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
        attrs: super::attrs::attrs(lua, &t, "option ")?,
        fds,
        argv0: super::attrs::argv0(&t)?,
    };
    let max_output = if extras.for_run { super::attrs::max_output(lua, &t)? } else { None };
    Ok(Converted { opts, in_stream, fd_streams, max_output })
}
