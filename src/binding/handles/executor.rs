//! Executors, and the registry's functions (get, define, kind, JSON).

use std::rc::Rc;
use std::sync::Arc;

use mlua::{AnyUserData, Lua, Table, UserData, UserDataMethods, Value};

use super::process::ProcessUd;
use super::stream::StreamUd;
use super::{bad_arg, fail, ok, unit, BAD_ARGUMENT};
use crate::binding::convert::BadArg;
use crate::core::error::Error;
use crate::binding::convert::{self, Converted, Definition, ShimExtras};
use crate::binding::state_end::new_handle;
use crate::binding::StateCtx;
use crate::core::command::CommandSpec;
use crate::core::io::stream::{Outputs, Stream};
use crate::core::json::Json;
use crate::core::os::spawn::attrs::PassedFd;
use crate::core::os::spawn::{Redirect, SpawnRequest};
use crate::core::process::Process;
use crate::core::registry::{Executor, NATIVE_ID};

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

pub struct ExecutorUd {
    ex: Executor,
    ctx: Rc<StateCtx>,
}

impl UserData for ExecutorUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // exec(command, options, for_run, timeout, stdin, stdout, stderr
        // streams, fds streams by number): process, nil, nil, nil, started
        // | nil, message, code
        // ("bad_argument" with the number of the bad argument, 1: the
        // command, 2: the options; else "failed": raised as it is).
        // `started`: for run, the process was started, fed its input and
        // had its stdin ended (Process::begin_run).
        // The shim passes the options as given, with the timeout it parsed
        // and the raw streams of stream handles found in them.
        #[allow(clippy::type_complexity)]
        m.add_method(
            "exec",
            |lua,
             this,
             (cmd, opts, for_run, timeout, s_in, s_out, s_err, fd_streams): (
                Value,
                Value,
                bool,
                Option<f64>,
                Option<AnyUserData>,
                Option<AnyUserData>,
                Option<AnyUserData>,
                Option<Table>,
            )| {
            let bad = |e: BadArg| Ok((Value::Nil, Some(e.message), Some(BAD_ARGUMENT), e.arg, false));
            let failed = |e: Error| Ok((Value::Nil, Some(e.to_string()), Some(e.code()), None, false));
            // `run`'s options table, for its input once checked (below).
            let run_options = match (&opts, for_run) {
                (Value::Table(t), true) => Some(t.clone()),
                _ => None,
            };
            let spec = match convert::command(lua, cmd) {
                Ok(c) => c,
                Err(e) => return bad(e),
            };
            let extras = ShimExtras { timeout, streams: [s_in, s_out, s_err], for_run, fd_streams };
            let Converted { opts, in_stream, fd_streams, max_output } = match convert::exec_options(lua, opts, extras) {
                Ok(o) => o,
                Err(e) => return bad(e),
            };
            if !fd_streams.is_empty() {
                // (As every `fds` of a remote command, before anything is
                // handed over.)
                if let Err(e) = this.ex.refuse_remote(&["fds"]) {
                    return failed(Error::Other(e));
                }
            }
            match this.ex.prepare(spec, opts) {
                Ok((mut req, remote, buffer_limit)) => {
                    // Handed over only now that nothing else can fail: each
                    // stream is checked first (once, and able to go), so
                    // that a refusal leaves every one of them as it was.
                    let cannot = |name: &str, why: String| BadArg { message: format!("option {name}: the stream cannot be handed over: {why}"), arg: Some(2) };
                    let mut given: Vec<((usize, usize), String)> = Vec::new();
                    let named = in_stream.iter().map(|ud| (ud, "stdin".to_string()));
                    for (ud, name) in named.chain(fd_streams.iter().map(|(t, ud)| (ud, format!("fds[{t}]")))) {
                        let checked = ud.borrow::<StreamUd>().map_err(|e| Error::Other(e.to_string())).and_then(|s| {
                            s.0.check_hand_over()?;
                            Ok(s.0.identity())
                        });
                        let id = match checked {
                            Ok(id) => id,
                            Err(e) => return bad(cannot(&name, e.to_string())),
                        };
                        if let Some((_, first)) = given.iter().find(|(g, _)| *g == id) {
                            return bad(cannot(&name, format!("it is given as {first} too (a stream goes to one place)")));
                        }
                        given.push((id, name));
                    }
                    let hand_over = |ud: &AnyUserData, name: &str| {
                        let handed = ud.borrow_mut::<StreamUd>().map_err(|e| Error::Other(e.to_string())).and_then(|mut s| s.0.hand_over());
                        handed.map_err(|e| cannot(name, e.to_string()))
                    };
                    if let Some(ud) = in_stream {
                        match hand_over(&ud, "stdin") {
                            Ok(fd) => req.redirect[0] = Some(Redirect::Fd(Arc::new(fd))),
                            Err(e) => return bad(e),
                        }
                    }
                    for (target, ud) in fd_streams {
                        match hand_over(&ud, &format!("fds[{target}]")) {
                            Ok(fd) => req.fds.push(PassedFd { target, source: Redirect::Fd(Arc::new(fd)), write: false }),
                            Err(e) => return bad(e),
                        }
                    }
                    req.fds.sort_by_key(|f| f.target);
                    let mut p = Process::new(req, remote, this.ctx.driver.clone(), this.ctx.owner, this.ex.limit());
                    if let Some(b) = buffer_limit {
                        p.set_buffer_limit(b);
                    }
                    if let Some(m) = max_output {
                        p.set_max_output(m);
                    }
                    // For `run`, started here when nothing must be waited
                    // for first: one call instead of five (connect, queue,
                    // start, write, close_stdin).
                    let started = for_run && {
                        // (exec_options checked that it is a string.)
                        let input = match &run_options {
                            Some(t) => t.raw_get::<Option<mlua::String>>("input")?,
                            None => None,
                        };
                        let input = input.as_ref().map(|s| s.as_bytes());
                        match p.begin_run(input.as_deref()) {
                            Ok(started) => started,
                            Err(e) => return failed(e),
                        }
                    };
                    Ok((Value::UserData(new_handle(lua, ProcessUd(p, this.ctx.main_thread.clone()))?), None, None, None, started))
                }
                Err(e) => failed(Error::Other(e)),
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

/// Make the metatables of the three userdata types now, by creating one
/// placeholder of each and destroying it at once. mlua makes a type's
/// metatable, and a Rust callback for each of its methods, the first time
/// a value of the type is pushed. Each callback lives in a userdata that
/// Lua finalizes when the state closes, and Lua finalizes in the reverse
/// order of marking: made after the module's first closing sentinel
/// (init.lua), they would be freed before it, and a finalizer of the
/// host's that runs in between would call freed closures. Made here,
/// before the shim is loaded, they are older than the sentinel, like every
/// Rust function an entry point can reach (see state_end.rs).
fn register_types(lua: &Lua, ctx: &Rc<StateCtx>) -> mlua::Result<()> {
    let ex = ctx.registry.borrow().acquire(NATIVE_ID).map_err(mlua::Error::runtime)?;
    // Never started: dropping it touches no child and no descriptor.
    let p = Process::new(SpawnRequest::new(CommandSpec::Argv(Vec::new())), None, ctx.driver.clone(), ctx.owner, ex.limit());
    // No pipe: dropping it unwatches nothing.
    let s = Stream::new(Outputs::new([None, None], 0), 0, 0, ctx.driver.clone());
    for ud in [
        lua.create_userdata(ExecutorUd { ex, ctx: ctx.clone() })?,
        lua.create_userdata(ProcessUd(p, ctx.main_thread.clone()))?,
        lua.create_userdata(StreamUd(s))?,
    ] {
        ud.destroy()?;
    }
    Ok(())
}

pub fn install(lua: &Lua, core: &Table, ctx: Rc<StateCtx>) -> mlua::Result<()> {
    register_types(lua, &ctx)?;
    {
        let ctx = ctx.clone();
        core.set(
            "get",
            lua.create_function(move |lua, id: String| {
                let r = ctx.registry.borrow().acquire(&id);
                match r {
                    Ok(ex) => ok(lua, new_handle(lua, ExecutorUd { ex, ctx: ctx.clone() })?),
                    Err(e) => fail(Error::Other(e)),
                }
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        core.set(
            "define",
            // define(id, config): true | nil, message, code ("bad_argument"
            // with the argument's number, 1: the id, 2: the config)
            lua.create_function(move |lua, (id, cfg): (Value, Value)| {
                let def = match convert::definition(lua, id, cfg) {
                    Ok(d) => d,
                    Err(e) => return bad_arg(e),
                };
                let mut reg = ctx.registry.borrow_mut();
                let r = match def {
                    Definition::Native(id, c) => reg.define_native(&id, c),
                    Definition::Ssh(id, c, target) => reg.define_ssh(&id, c, target),
                    Definition::Container(id, c, container) => reg.define_container(&id, c, container),
                    Definition::Other(id, kind) => reg.define_other(&id, &kind),
                };
                unit(lua, r.map_err(Error::Other))
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
