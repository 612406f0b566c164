//! The thin mlua layer: turns the core into the raw `core` table that the
//! Lua shim (lua/exec/*.lua) builds the public API on.
//!
//! Conventions of the raw API: it never raises for operational errors; it
//! returns `nil, message` (or `false` for "would block") and the shim decides
//! whether the public function raises or returns, so that every error that
//! reaches a user is a plain string.

mod convert;
mod host_hook;
#[cfg(any(feature = "lua53", feature = "lua54"))]
mod line_reader;
mod memory_limit;
mod handles;
mod state_end;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use mlua::{AnyUserData, Function, Lua, Table, UserData, Value};

use crate::core::os::children::{self, Owner};
use crate::core::io::driver::{Driver, SharedDriver};
use crate::core::registry::Registry;
use crate::core::os::sys;

/// Everything one Lua state (one unit of work) owns.
pub struct StateCtx {
    pub owner: Owner,
    pub driver: SharedDriver,
    pub registry: RefCell<Registry>,
    /// Set when the Lua state closes, with the shim's `life.closing` (both
    /// by sched.set_closing): read by the C line readers, which do not
    /// look into Lua tables.
    pub closing: Rc<Cell<bool>>,
    /// Whose hook tells that the host wants control back (host_hook.rs).
    pub main_thread: host_hook::MainThread,
}

/// Lives in the Lua registry; its finalizer runs when the state closes and
/// ends every child the state started.
struct StateGuard(Rc<StateCtx>);

impl UserData for StateGuard {}

impl Drop for StateGuard {
    fn drop(&mut self) {
        children::kill_owner(self.0.owner);
    }
}

const GUARD_KEY: &str = "lua-exec.state";

/// The Lua sources of the shim, compiled into the library.
const SHIM: &[(&str, &str)] = &[
    ("fifo", include_str!("../../lua/exec/fifo.lua")),
    ("timers", include_str!("../../lua/exec/timers.lua")),
    ("sched", include_str!("../../lua/exec/sched.lua")),
    ("channel", include_str!("../../lua/exec/channel.lua")),
    ("time", include_str!("../../lua/exec/time.lua")),
    ("object", include_str!("../../lua/exec/object.lua")),
    ("registry", include_str!("../../lua/exec/registry.lua")),
    ("slots", include_str!("../../lua/exec/slots.lua")),
    ("process", include_str!("../../lua/exec/process.lua")),
    ("stream", include_str!("../../lua/exec/stream.lua")),
    ("scanner", include_str!("../../lua/exec/scanner.lua")),
    ("run", include_str!("../../lua/exec/run.lua")),
    ("init", include_str!("../../lua/exec/init.lua")),
];

fn state(lua: &Lua) -> mlua::Result<Rc<StateCtx>> {
    if let Ok(ud) = lua.named_registry_value::<AnyUserData>(GUARD_KEY) {
        return Ok(ud.borrow::<StateGuard>()?.0.clone());
    }
    let ctx = Rc::new(StateCtx {
        owner: children::new_owner(),
        driver: Driver::shared().map_err(|e| mlua::Error::runtime(format!("exec: cannot create the event loop: {e}")))?,
        registry: RefCell::new(Registry::new()),
        closing: Rc::new(Cell::new(false)),
        main_thread: host_hook::MainThread::of(lua)?,
    });
    lua.set_named_registry_value(GUARD_KEY, StateGuard(ctx.clone()))?;
    state_end::install(lua)?;
    Ok(ctx)
}

/// Keep this library mapped until the process exits: the reaper thread and
/// the atexit handler run its code after the Lua state (which would
/// `dlclose` it) is gone.
fn pin_library() {
    // SAFETY: dladdr reads the address of one of our functions into a zeroed Dl_info; dlopen with RTLD_NOLOAD only takes a reference to a library that is already loaded (ours).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(pin_library as *const libc::c_void, &mut info) != 0 && !info.dli_fname.is_null() {
            libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE);
        }
    }
}

pub fn open(lua: &Lua) -> mlua::Result<Value> {
    pin_library();
    // Start the reaper while threads can still be created; if it cannot
    // start, orphans are swept from poll and start instead.
    children::start_reaper();
    let ctx = state(lua)?;
    let core = lua.create_table()?;
    {
        let closing = ctx.closing.clone();
        core.set(
            "set_closing",
            lua.create_function(move |lua, ()| {
                closing.set(true);
                state_end::end_handles(lua)
            })?,
        )?;
    }
    core.set("now", lua.create_function(|_, ()| Ok(sys::monotonic_seconds()))?)?;
    core.set("live_children", lua.create_function(|_, ()| Ok(children::count()))?)?;
    core.set("version", env!("CARGO_PKG_VERSION"))?;
    // The one home of the kill grace: close() and timeouts both use it.
    core.set("kill_grace", children::GRACE.as_secs_f64())?;
    core.set("registry_memory_limit", crate::core::registry::MEMORY_LIMIT)?;
    core.set("within_memory", lua.create_function(memory_limit::within_memory)?)?;
    core.set("max_chunk", crate::core::io::stream::MAX_CHUNK)?;
    // Stdin queued at or beyond this makes write_stdin wait (Process::stdin_must_wait).
    core.set("stdin_high_water", crate::core::io::driver::STDIN_HIGH_WATER)?;
    core.set("shown_max", crate::core::command::SHOWN_MAX)?;
    // Whether streams have C line readers (binding/line_reader.rs): only
    // where a C function may yield through lua_callk.
    core.set("line_readers", cfg!(any(feature = "lua53", feature = "lua54")))?;
    core.set("fallback_poll", children::FALLBACK_POLL.as_secs_f64())?;
    // "posix_spawn" or "fork": how children start on this system (tests).
    core.set("spawn_method", crate::core::os::spawn::method())?;
    // Signal names (without "SIG") -> numbers, for process:signal("TERM").
    {
        let t = lua.create_table()?;
        for (n, name) in crate::core::os::sys::SIGNALS {
            t.raw_set(*name, *n)?;
        }
        core.set("signals", t)?;
    }
    // exec.environ(): our environment as a table (bytes, not UTF-8).
    core.set(
        "environ",
        lua.create_function(|lua, ()| {
            use std::os::unix::ffi::OsStrExt;
            let t = lua.create_table()?;
            for (k, v) in std::env::vars_os() {
                t.raw_set(lua.create_string(k.as_bytes())?, lua.create_string(v.as_bytes())?)?;
            }
            Ok(t)
        })?,
    )?;
    // exec.registry.load's file: data | nil, why (os/open.rs: never blocks).
    core.set(
        "read_data_file",
        lua.create_function(|lua, path: mlua::String| {
            use std::os::unix::ffi::OsStrExt;
            let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&path.as_bytes()));
            match crate::core::os::open::read_data_file(&path, crate::core::registry::FILE_LIMIT) {
                Ok(data) => Ok((Some(lua.create_string(&data)?), None)),
                Err(e) => Ok((None, Some(e))),
            }
        })?,
    )?;
    // exec.which(name [, path]): the absolute path | nil, message, code
    // ("bad_argument" with the argument's number: raised by the shim).
    core.set(
        "which",
        lua.create_function(|lua, (name, path): (Value, Value)| {
            use std::os::unix::ffi::OsStrExt;
            type Out = (Option<mlua::String>, Option<String>, Option<&'static str>, Option<i64>);
            let bad = |message: String, n: i64| -> mlua::Result<Out> { Ok((None, Some(message), Some("bad_argument"), Some(n))) };
            let name = match &name {
                Value::String(s) if !s.as_bytes().is_empty() && !s.as_bytes().contains(&0) => s.as_bytes().to_vec(),
                Value::String(_) => return bad("must be a non-empty string without NUL bytes".into(), 1),
                other => return bad(format!("string expected, got {}", convert::type_of(other)), 1),
            };
            let path = match &path {
                Value::Nil => None,
                Value::String(s) if !s.as_bytes().contains(&0) => Some(s.as_bytes().to_vec()),
                Value::String(_) => return bad("must not contain a NUL byte".into(), 2),
                other => return bad(format!("string or nil expected, got {}", convert::type_of(other)), 2),
            };
            let path = path.as_deref().map(std::ffi::OsStr::from_bytes);
            match crate::core::os::which::which(std::ffi::OsStr::from_bytes(&name), path) {
                Ok(p) => Ok((Some(lua.create_string(p.as_os_str().as_bytes())?), None, None, None)),
                Err(e) => Ok((None, Some(e.to_string()), Some(e.code()), None)),
            }
        })?,
    )?;
    // Shell quoting has one home, shared with the remote command lines.
    core.set(
        "quote",
        lua.create_function(|lua, s: mlua::String| lua.create_string(crate::core::command::quote(&s.as_bytes())))?,
    )?;
    {
        // For host event loops: the descriptor to watch, and within how
        // many ms the loop must run even if it stays quiet (nil: no limit).
        let c1 = ctx.clone();
        core.set("pollfd", lua.create_function(move |_, ()| Ok(c1.driver.borrow().fd()))?)?;
        let c2 = ctx.clone();
        core.set("poll_due_ms", lua.create_function(move |_, ()| Ok(c2.driver.borrow().due_within_ms()))?)?;
        // The scheduler's signal for work no descriptor announces (a poll
        // that decided its timeout, or a host loop, must hear of it).
        let notice = ctx.driver.borrow().notice();
        core.set(
            "notify",
            lua.create_function(move |_, ()| {
                notice.signal();
                Ok(())
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        // The tokens' buffer, kept between calls. Taken out while in use:
        // a finalizer that runs while `out` is filled may poll too (the
        // scheduler's nested loop), and gets a buffer of its own.
        let spare = RefCell::new(Vec::new());
        core.set(
            "poll",
            lua.create_function(move |_, (timeout_ms, out): (i64, Table)| {
                let mut ready = std::mem::take(&mut *spare.borrow_mut());
                ready.clear();
                let timeout = timeout_ms.clamp(-1, i32::MAX as i64) as i32;
                let turned = ctx.driver.borrow_mut().turn(timeout, &mut ready, None);
                if let Err(e) = turned {
                    return Ok((None, Some(format!("event loop failed: {}", sys::describe(&e)))));
                }
                for (i, t) in ready.iter().enumerate() {
                    out.raw_set(i + 1, *t)?;
                }
                let n = ready.len();
                *spare.borrow_mut() = ready;
                Ok((Some(n), None))
            })?,
        )?;
    }
    handles::install(lua, &core, ctx)?;

    let modules = lua.create_table()?;
    for (name, src) in SHIM {
        let f: Function = lua.load(*src).set_name(format!("@lua/exec/{name}.lua")).into_function()?;
        modules.set(*name, f)?;
    }
    let init: Function = modules.get("init")?;
    init.call((core, modules))
}

#[mlua::lua_module(name = "exec")]
fn luaopen(lua: &Lua) -> mlua::Result<Value> {
    open(lua)
}
