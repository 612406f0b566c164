//! Raw userdata for executors, processes and streams, and the registry
//! functions: arguments go through convert.rs, results become Lua values.

use std::rc::Rc;
use std::sync::Arc;

use mlua::{AnyUserData, IntoLua, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use super::convert::{self, Definition, ShimExtras, SignalArg};
use super::host_hook::MainThread;
use super::state_end::new_handle;
use super::StateCtx;
use crate::core::process::collect::CollectStep;
use crate::core::process::{Output, Process, State, WaitStep};
use crate::core::json::Json;
use crate::core::registry::Executor;
use crate::core::remote::ssh::Readiness;
use crate::core::os::spawn::Redirect;
use crate::core::io::stream::{with_scratch, Got, Outputs, Stream, StreamRead, MAX_CHUNK};
use crate::core::command::CommandSpec;
use crate::core::os::spawn::SpawnRequest;
use crate::core::registry::NATIVE_ID;

type Fail = (Value, Option<String>);

fn ok<T: mlua::IntoLua>(lua: &Lua, v: T) -> mlua::Result<Fail> {
    Ok((v.into_lua(lua)?, None))
}

fn fail(msg: impl Into<String>) -> mlua::Result<Fail> {
    Ok((Value::Nil, Some(msg.into())))
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

pub struct ExecutorUd {
    ex: Executor,
    ctx: Rc<StateCtx>,
}

impl UserData for ExecutorUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        // exec(command, options, for_run, timeout, stdin, stdout, stderr
        // streams): process, nil, nil, started | nil, message, the number
        // of the bad argument (1: the command, 2: the options) when the
        // message is about one. `started`: for run, the process was started,
        // fed its input and had its stdin ended (Process::begin_run).
        // The shim passes the options as given, with the timeout it parsed
        // and the raw streams of stream handles found in them.
        #[allow(clippy::type_complexity)]
        m.add_method(
            "exec",
            |lua,
             this,
             (cmd, opts, for_run, timeout, s_in, s_out, s_err): (
                Value,
                Value,
                bool,
                Option<f64>,
                Option<AnyUserData>,
                Option<AnyUserData>,
                Option<AnyUserData>,
            )| {
            let bad = |msg: String, arg: Option<i64>| Ok((Value::Nil, Some(msg), arg, false));
            // `run`'s options table, for its input once checked (below).
            let run_options = match (&opts, for_run) {
                (Value::Table(t), true) => Some(t.clone()),
                _ => None,
            };
            let spec = match convert::command(lua, cmd) {
                Ok(c) => c,
                Err(e) => return bad(e.message, e.arg),
            };
            let extras = ShimExtras { timeout, streams: [s_in, s_out, s_err], for_run };
            let (opts, in_stream) = match convert::exec_options(lua, opts, extras) {
                Ok(o) => o,
                Err(e) => return bad(e.message, e.arg),
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
                            Err(e) => return bad(e, None),
                        }
                    };
                    Ok((Value::UserData(new_handle(lua, ProcessUd(p, this.ctx.main_thread.clone()))?), None, None, started))
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

/// A process, and the main thread whose hook ends a wait taken in Rust.
pub struct ProcessUd(Process, MainThread);

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
        // true | nil, message, the number of the bad argument (raised)
        m.add_method_mut("resize", |lua, this, (rows, cols): (Value, Value)| {
            let (rows, cols) = match convert::terminal_size(lua, rows, cols) {
                Ok(size) => size,
                Err(e) => return Ok(e.into_fail()),
            };
            let (v, e) = unit(lua, this.0.resize(rows, cols))?;
            Ok((v, e, None))
        });
        m.add_method_mut("status", |_, this, ()| Ok(this.0.status()));
        // For run: code, stdout, stderr, wake tokens | false, tokens to
        // park on | nil, message, wake tokens (see Process::collect_step).
        // `alone`: the caller waits alone (sched.lua), so the turns of the
        // event loop are taken here until it is done (Process::collect_alone).
        m.add_method_mut("collect", |lua, this, (stop, alone): (bool, bool)| {
            let (step, [w1, w2]) = if alone {
                let hook = this.1.watch(lua)?;
                this.0.collect_alone(stop, || hook.changed())
            } else {
                this.0.collect_step(stop)
            };
            let mut out = MultiValue::new();
            match step {
                CollectStep::Done(code, o, e) => {
                    out.push_back(Value::Integer(code as _));
                    out.push_back(Value::String(lua.create_string(&o)?));
                    drop(o);
                    out.push_back(Value::String(lua.create_string(&e)?));
                }
                CollectStep::Pending(tokens) => {
                    out.push_back(Value::Boolean(false));
                    for t in tokens {
                        out.push_back(t.into_lua(lua)?);
                    }
                    return Ok(out);
                }
                CollectStep::Failed(msg) => {
                    out.push_back(Value::Nil);
                    out.push_back(Value::String(lua.create_string(msg)?));
                }
            }
            for t in [w1, w2].into_iter().flatten() {
                out.push_back(t.into_lua(lua)?);
            }
            Ok(out)
        });
        m.add_method("collect_open", |_, this, ()| Ok(this.0.collect_open()));
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
        // `timed`: the wait has a deadline (Process::begin_wait).
        m.add_method_mut("wait_step", |lua, this, timed: bool| {
            let (step, wake) = this.0.wait_step(timed);
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
        m.add_method_mut("signal_rest", |_, this, sig: i64| {
            Ok(this.0.signal_rest(sig.clamp(0, *crate::core::os::sys::SIGNAL_NUMBERS.end() as i64) as i32))
        });
        m.add_method_mut("finish", |_, this, ()| {
            this.0.finish();
            Ok(())
        });
        // true | nil, message[, true: the argument itself is wrong (raised)]
        m.add_method_mut("signal", |lua, this, sig: Value| {
            let r = match convert::signal(lua, &sig) {
                SignalArg::Number(n) => this.0.signal(n),
                SignalArg::Invalid(e) => Err(e),
                SignalArg::Bad(e) => return Ok((Value::Nil, Some(e), true)),
            };
            let (v, e) = unit(lua, r)?;
            Ok((v, e, false))
        });
        // close(signal number or name): true | nil, why the signal is none
        m.add_method_mut("close", |lua, this, sig: Value| match convert::signal(lua, &sig) {
            SignalArg::Number(n) => {
                this.0.close_with(n);
                ok(lua, true)
            }
            SignalArg::Invalid(e) | SignalArg::Bad(e) => fail(e),
        });
        // true | nil, message: whether that output can be read at all
        // (asked before start, when the stream itself cannot be taken yet).
        m.add_method("can_stream", |lua, this, which: i64| {
            let which = if which == 1 { Output::Stdout } else { Output::Stderr };
            unit(lua, this.0.check_stream(which))
        });
        m.add_method_mut("stream", |lua, this, which: i64| {
            let which = if which == 1 { Output::Stdout } else { Output::Stderr };
            match this.0.take_stream(which) {
                Ok(s) => ok(lua, new_handle(lua, StreamUd(s))?),
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
                let closing = super::state(lua)?.closing.clone();
                super::line_reader::new(lua, this.0.buffered_lines(), closing, me, fallback, iterator, super::state_end::live_table(lua)?)
            },
        );
        // The scan and text methods of a lines scanner `me` of this stream
        // (see line_reader.rs): C functions serving buffered lines, with
        // the token in `token[1]`; the fallbacks do the rest.
        #[cfg(any(feature = "lua53", feature = "lua54"))]
        m.add_method(
            "scanner_methods",
            |lua, this, (me, scan, text, token): (Value, mlua::Function, mlua::Function, Table)| {
                let closing = super::state(lua)?.closing.clone();
                super::line_reader::new_scanner(lua, this.0.buffered_lines(), closing, me, [scan, text], token, super::state_end::live_table(lua)?)
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
                    Err(e) => fail(e),
                }
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        core.set(
            "define",
            // define(id, config): true | nil, message, the number of the bad
            // argument (1: the id, 2: the config) when it is about one
            lua.create_function(move |lua, (id, cfg): (Value, Value)| {
                let def = match convert::definition(lua, id, cfg) {
                    Ok(d) => d,
                    Err(e) => return Ok(e.into_fail()),
                };
                let mut reg = ctx.registry.borrow_mut();
                let r = match def {
                    Definition::Native(id, c) => reg.define_native(&id, c),
                    Definition::Ssh(id, c, target) => reg.define_ssh(&id, c, target),
                    Definition::Other(id, kind) => reg.define_other(&id, &kind),
                };
                let (v, e) = unit(lua, r)?;
                Ok((v, e, None))
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
