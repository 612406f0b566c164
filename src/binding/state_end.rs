//! What the end of the Lua state needs, so that a finalizer of the host's
//! that runs during `lua_close` finds the library working or gets
//! "exec: the Lua state is closing", never freed memory.
//!
//! When the state closes, Lua runs every pending finalizer, in the reverse
//! order in which the objects were marked for finalization (at creation,
//! for userdata), and frees nothing until all have run. The library's own
//! finalizers free what the Rust side holds: each function made with mlua
//! keeps its closure in a userdata whose `__gc` drops it, and each handle's
//! raw object is a userdata whose `__gc` drops the process or stream. A
//! Rust function called after its userdata was finalized reads freed
//! memory; a handle used after its raw object was finalized raises mlua's
//! "userdata has been destructed".
//!
//! So the library is closed before any of them goes, by a sentinel: an
//! object kept in the registry, which is only ever finalized at the state's
//! end, whose finalizer sets the closing flag (`sched.set_closing`, which
//! calls `end_handles` here). From then on every entry point of the shim
//! raises instead of calling into Rust. For that to hold:
//! - every Rust function the shim can reach is made before the first
//!   sentinel (`open` in mod.rs; the userdata types' method tables by
//!   `handles::executor::register_types`), so that it is finalized after it;
//! - each new handle (`new_handle`) makes a new sentinel, younger than the
//!   handle, so that the handles too go after the flag is set. The
//!   previous sentinel is then dropped, and its finalizer (in a normal
//!   collection) does nothing: only the sentinel still registered as the
//!   latest sets the flag. The first one (init.lua) is never dropped and
//!   always sets it, for a sentinel made during `lua_close` (by a
//!   finalizer that ran before the latest one), which Lua 5.1 to 5.4 never
//!   finalize.
//!
//! A host finalizer that runs before the latest sentinel finds everything
//! working; one that runs after it gets the closing error.
//!
//! Two limits remain. A handle made by a host finalizer while the state
//! closes takes the latest sentinel's place, and Lua 5.1 to 5.4 never
//! finalize the new one: an older host finalizer then finds the handles
//! made after it already gone ("userdata has been destructed"), and the
//! library's functions still there. And Lua 5.1 (not LuaJIT) runs a
//! collection step, and with it pending finalizers, inside any allocation
//! that crosses its threshold, also while `lua_close` runs them: a host
//! finalizer that allocates more than the whole heap held when it began
//! can have the library's own finalizers run inside a call of the library
//! that it makes, and that call then reads freed memory.

use std::ffi::{c_int, CStr};

use mlua::ffi::{self, lua_State};
use mlua::{AnyUserData, Lua, Table, UserData};

/// A weak-keyed table of every userdata with a finalizer that the library
/// made after the module was loaded (handles' raw objects, line readers'
/// slots), for `end_handles`.
const LIVE_KEY: &str = "lua-exec.live";
/// The latest sentinel (registry field).
const LATEST_KEY: &CStr = c"lua-exec.sentinel.latest";
/// The metatable of the sentinels made here (registry field).
const SENTINEL_METATABLE: &CStr = c"lua-exec.sentinel.mt";
/// What the latest sentinel's finalizer calls: `sched.set_closing`, set by
/// init.lua (registry field).
const ON_CLOSE_KEY: &CStr = c"lua-exec.on_close";

/// Set up the registry for the above, once per state.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let live = lua.create_table()?;
    live.set_metatable(Some(lua.create_table_from([("__mode", "k")])?))?;
    lua.set_named_registry_value(LIVE_KEY, live)?;
    // SAFETY: exec_raw runs this in protected mode; the metatable pushed by
    // luaL_newmetatable is popped by the setfield of its one field.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            ffi::luaL_newmetatable(l, SENTINEL_METATABLE.as_ptr());
            ffi::lua_pushcfunction(l, sentinel_gc);
            ffi::lua_setfield(l, -2, c"__gc".as_ptr());
            ffi::lua_pop(l, 1);
        })
    }
}

/// `__gc` of the sentinels made by `new_handle`: if this one is still the
/// latest, the state is closing.
unsafe extern "C-unwind" fn sentinel_gc(l: *mut lua_State) -> c_int {
    // SAFETY: a finalizer gets its object at index 1; the registry reads
    // push one value each, popped or called. The call runs Lua code (the
    // shim's set_closing), whose errors propagate as a finalizer's do, with
    // no Rust value live here.
    unsafe {
        ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, LATEST_KEY.as_ptr());
        let latest = ffi::lua_rawequal(l, 1, -1) != 0;
        ffi::lua_pop(l, 1);
        if latest {
            ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, ON_CLOSE_KEY.as_ptr());
            if ffi::lua_type(l, -1) == ffi::LUA_TFUNCTION {
                ffi::lua_call(l, 0, 0);
            } else {
                ffi::lua_pop(l, 1);
            }
        }
    }
    0
}

/// The table of `LIVE_KEY`.
pub(crate) fn live_table(lua: &Lua) -> mlua::Result<Table> {
    lua.named_registry_value(LIVE_KEY)
}

/// A new userdata holding `v` (a handle's raw object): listed for
/// `end_handles`, and followed by a new latest sentinel.
pub(crate) fn new_handle<T: UserData + 'static>(lua: &Lua, v: T) -> mlua::Result<AnyUserData> {
    let ud = lua.create_userdata(v)?;
    // SAFETY: exec_raw runs this in protected mode with the live table and
    // the userdata at stack 1-2. Each push is consumed by the rawset or the
    // setmetatable/setfield that follows it; an allocation error raised
    // by any of them leaves a listed or unlisted but whole userdata (its
    // own finalizer frees it) and no Rust value live here.
    unsafe {
        lua.exec_raw::<()>((live_table(lua)?, &ud), |l| {
            ffi::lua_pushvalue(l, 2);
            ffi::lua_pushboolean(l, 1);
            ffi::lua_rawset(l, 1);
            ffi::lua_newuserdata(l, 0);
            ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, SENTINEL_METATABLE.as_ptr());
            ffi::lua_setmetatable(l, -2);
            ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, LATEST_KEY.as_ptr());
        })?;
    }
    Ok(ud)
}

/// Run the finalizer of every listed userdata now: called once the
/// closing flag is set. Lua 5.1, 5.3 and 5.4 finalize only objects that
/// existed when `lua_close` began: a handle that a host finalizer made
/// with the library before the flag was set would never be, and what it
/// holds in Rust would never be freed. A userdata already finalized has
/// no `__gc` left (mlua) or an idempotent one (line_reader.rs).
pub fn end_handles(lua: &Lua) -> mlua::Result<()> {
    let live = live_table(lua)?;
    // SAFETY: exec_raw runs this in protected mode with the table at stack
    // index 1. The traversal keeps the key on the stack, and a finalizer
    // only changes its own object's metatable, never the table; a finalizer
    // that raises propagates as an error with no Rust value live here.
    unsafe {
        lua.exec_raw::<()>(live, |l| {
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, 1) != 0 {
                ffi::lua_pop(l, 1);
                if ffi::luaL_callmeta(l, -1, c"__gc".as_ptr()) != 0 {
                    ffi::lua_pop(l, 1);
                }
            }
        })
    }
}
