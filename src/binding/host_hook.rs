//! Whether the host asked for control back while a call loops in Rust.
//!
//! The stand-alone interpreters (lua.c, luajit.c) answer Ctrl-C by setting a
//! hook on the main thread from their signal handler; the hook raises
//! "interrupted!" at the next Lua instruction. A call that takes several
//! turns of the event loop without going back to Lua (`run`, waiting alone)
//! returns as soon as that hook appears. The signal hold of the core
//! (sys::SignalsHeld) covers a handler that runs on this thread; this covers
//! one that ran on another thread of a host that has several.
//!
//! The thread watched is one the state keeps alive for as long as the
//! library may read it, never one that may be collected (the library may
//! be loaded inside a coroutine that is gone by the time it is used):
//! - Lua 5.3 and 5.4: the main thread, from the registry. It lives as long
//!   as the state.
//! - LuaJIT: hooks are global (any thread reads the same one), so a thread
//!   of our own, kept in the registry.
//! - Lua 5.1: hooks are per thread and there is no way to name the main
//!   thread, but `lua_pushthread` tells a call made on it. The loading
//!   thread is taken (and kept in the registry while it is not the main
//!   one), until a call comes on the main thread: from then on that one.

use std::cell::Cell;
use std::os::raw::c_int;
use std::rc::Rc;

use mlua::ffi::{self, lua_State};
use mlua::Lua;

/// Where the watched thread is kept (registry field) when it is not the
/// main thread.
#[cfg(any(feature = "luajit", feature = "lua51"))]
const THREAD_KEY: &std::ffi::CStr = c"lua-exec.hook-thread";

/// The thread whose hook the interpreters set, shared by the state's
/// processes (on Lua 5.1 it becomes the main thread once that is seen).
#[derive(Clone)]
pub struct MainThread(Rc<Cell<Watched>>);

#[derive(Clone, Copy)]
struct Watched {
    thread: *mut lua_State,
    /// Lua 5.1: whether `thread` is the main thread (final) yet.
    #[cfg(feature = "lua51")]
    main: bool,
}

impl MainThread {
    /// Found once, when the state is set up, on the thread that loads the
    /// library.
    pub fn of(lua: &Lua) -> mlua::Result<MainThread> {
        let mut thread = std::ptr::null_mut();
        #[cfg(feature = "lua51")]
        let mut main = false;
        // SAFETY: exec_raw runs this in protected mode on the loading
        // thread's stack; every value pushed is popped or stored in the
        // registry by the setfield that follows it, before the closure
        // returns. What is kept is the registry's main thread (5.3, 5.4),
        // a thread stored in the registry (LuaJIT), or the loading thread,
        // stored in the registry unless it is the main one (5.1).
        unsafe {
            lua.exec_raw::<()>((), |l| {
                #[cfg(any(feature = "lua54", feature = "lua53"))]
                {
                    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_MAINTHREAD);
                    thread = ffi::lua_tothread(l, -1);
                    ffi::lua_pop(l, 1);
                }
                #[cfg(feature = "luajit")]
                {
                    thread = ffi::lua_newthread(l);
                    ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, THREAD_KEY.as_ptr());
                }
                #[cfg(feature = "lua51")]
                {
                    thread = l;
                    main = ffi::lua_pushthread(l) == 1;
                    if main {
                        ffi::lua_pop(l, 1);
                    } else {
                        ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, THREAD_KEY.as_ptr());
                    }
                }
            })?;
        }
        Ok(MainThread(Rc::new(Cell::new(Watched {
            thread,
            #[cfg(feature = "lua51")]
            main,
        }))))
    }

    /// Lua 5.1: if the call runs on the main thread, watch that one from now
    /// on and let the loading thread go.
    #[cfg(feature = "lua51")]
    fn learn_main(&self, lua: &Lua) -> mlua::Result<()> {
        if self.0.get().main {
            return Ok(());
        }
        // SAFETY: exec_raw runs this in protected mode on the calling
        // thread's stack; lua_pushthread's value is popped, or replaced by
        // the nil that the setfield pops. The thread kept is the main one,
        // which lives as long as the state.
        unsafe {
            lua.exec_raw::<()>((), |l| {
                let main = ffi::lua_pushthread(l) == 1;
                ffi::lua_pop(l, 1);
                if main {
                    self.0.set(Watched { thread: l, main: true });
                    ffi::lua_pushnil(l);
                    ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, THREAD_KEY.as_ptr());
                }
            })
        }
    }

    /// The hook as it is now, to compare with later.
    pub fn watch(&self, lua: &Lua) -> mlua::Result<HookWatch> {
        #[cfg(feature = "lua51")]
        self.learn_main(lua)?;
        #[cfg(not(feature = "lua51"))]
        let _ = lua;
        let thread = self.0.get().thread;
        Ok(HookWatch { thread, at_start: hook(thread) })
    }
}

/// The hook of `thread`.
fn hook(thread: *mut lua_State) -> (Option<usize>, c_int) {
    // SAFETY: `thread` is one MainThread keeps alive (see the module's
    // comment): the state's main thread, or a thread held by the registry
    // until the main one replaces it, which happens only between calls,
    // never while a HookWatch of the call exists. Both functions only
    // read its fields.
    unsafe { (ffi::lua_gethook(thread).map(|h| h as usize), ffi::lua_gethookmask(thread)) }
}

/// The watched thread's hook when a loop began.
pub struct HookWatch {
    thread: *mut lua_State,
    at_start: (Option<usize>, c_int),
}

impl HookWatch {
    /// Whether the hook changed since: the host wants Lua to run.
    pub fn changed(&self) -> bool {
        hook(self.thread) != self.at_start
    }
}
