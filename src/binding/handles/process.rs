//! Processes.

use mlua::{IntoLua, MultiValue, UserData, UserDataMethods, Value};

use super::stream::StreamUd;
use super::{bad_arg, fail, ok, push_failure, unit};
use crate::core::error::Error;
use crate::binding::state_end::new_handle;
use crate::binding::convert::{self, SignalArg};
use crate::binding::host_hook::MainThread;
use crate::core::process::collect::CollectStep;
use crate::core::process::{Output, Process, State, WaitStep};
use crate::core::remote::ssh::Readiness;

/// A process, and the main thread whose hook ends a wait taken in Rust.
pub struct ProcessUd(pub(super) Process, pub(super) MainThread);

impl UserData for ProcessUd {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("start", |lua, this, ()| {
            let r = this.0.start();
            unit(lua, r)
        });
        // true (ready) | false (still connecting) | nil, message, code
        m.add_method("connect", |lua, this, ()| match this.0.connect() {
            Ok(r) => ok(lua, r == Readiness::Ready),
            Err(e) => fail(Error::Other(e)),
        });
        // After start: true (the program runs) | false (its container
        // engine is still starting it) | nil, message (the engine failed;
        // the process is closed). See process/settle.rs.
        m.add_method_mut("settle", |lua, this, ()| match this.0.settle() {
            Ok(started) => ok(lua, started),
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
        // true | nil, message, code (bad_argument: raised)
        m.add_method_mut("resize", |lua, this, (rows, cols): (Value, Value)| {
            match convert::terminal_size(lua, rows, cols) {
                Ok((rows, cols)) => unit(lua, this.0.resize(rows, cols)),
                Err(e) => bad_arg(e),
            }
        });
        m.add_method_mut("status", |_, this, ()| Ok(this.0.status()));
        // For run: code, stdout, stderr, wake tokens | false, tokens to
        // park on | nil, message, error code, wake tokens (see
        // Process::collect_step).
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
                CollectStep::Failed(e) => push_failure(lua, &mut out, &e)?,
            }
            for t in [w1, w2].into_iter().flatten() {
                out.push_back(t.into_lua(lua)?);
            }
            Ok(out)
        });
        m.add_method("collect_open", |_, this, ()| Ok(this.0.collect_open()));
        // After collect's result: whether an output had more than max_output.
        m.add_method("truncated", |_, this, ()| Ok(this.0.truncated()));
        m.add_method("command", |_, this, ()| Ok(this.0.command()));
        m.add_method("exit_token", |_, this, ()| Ok(this.0.exit_token()));
        m.add_method("stdin_token", |_, this, ()| Ok(this.0.stdin_token()));
        // code | false (still running) | nil, message, code
        m.add_method_mut("try_wait", |lua, this, ()| match this.0.try_wait() {
            Ok(Some(c)) => ok(lua, c),
            Ok(None) => ok(lua, false),
            Err(e) => fail(e),
        });
        // code, tokens to wake... | false, token | nil, message, error code,
        // tokens to wake...
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
                WaitStep::Failed(e) => push_failure(lua, &mut out, &e)?,
            }
            for t in wake.into_iter().flatten() {
                out.push_back(t.into_lua(lua)?);
            }
            Ok(out)
        });
        // The timeout passed: end what is left of the command (true if
        // anything was). Whether anything of its group is left.
        m.add_method_mut("time_out", |_, this, ()| Ok(this.0.time_out()));
        m.add_method_mut("group_alive", |_, this, ()| Ok(this.0.group_alive()));
        m.add_method_mut("finish", |_, this, ()| {
            this.0.finish();
            Ok(())
        });
        // true | nil, message, code (bad_argument: the argument itself is
        // wrong, raised)
        m.add_method_mut("signal", |lua, this, sig: Value| match convert::signal(lua, &sig) {
            SignalArg::Number(n) => unit(lua, this.0.signal(n)),
            SignalArg::Invalid(e) => fail(Error::Invalid(e)),
            SignalArg::Bad(e) => bad_arg(e),
        });
        // close(signal number or name): true | nil, why the signal is none
        // (always a bad argument of close)
        m.add_method_mut("close", |lua, this, sig: Value| match convert::signal(lua, &sig) {
            SignalArg::Number(n) => {
                this.0.close_with(n);
                ok(lua, true)
            }
            SignalArg::Invalid(message) => bad_arg(convert::BadArg { message, arg: Some(1) }),
            SignalArg::Bad(e) => bad_arg(e),
        });
        // true | nil, message, code: whether that output can be read at all
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
        // bytes still queued | nil, message, code. `alone`: the caller
        // waits alone (sched.lua), so the bytes go from the string itself
        // and the event loop's turns are taken here (Process::write_stdin_alone).
        m.add_method_mut("write", |lua, this, (data, alone): (mlua::String, Option<bool>)| {
            let r = if alone == Some(true) {
                let hook = this.1.watch(lua)?;
                this.0.write_stdin_alone(&data.as_bytes(), || hook.changed())
            } else {
                this.0.write_stdin(&data.as_bytes())
            };
            match r {
                Ok(q) => ok(lua, q),
                Err(e) => fail(e),
            }
        });
        m.add_method("stdin_queued", |lua, this, ()| match this.0.stdin_queued() {
            Ok(q) => ok(lua, q),
            Err(e) => fail(e),
        });
        m.add_method_mut("close_stdin", |lua, this, ()| {
            let r = this.0.close_stdin();
            unit(lua, r)
        });
    }
}
