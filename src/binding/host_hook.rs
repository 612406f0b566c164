//! Whether the host asked for control back while a call loops in Rust.
//!
//! The stand-alone interpreters (lua.c, luajit.c) answer Ctrl-C by setting a
//! hook on the main thread from their signal handler; the hook raises
//! "interrupted!" at the next Lua instruction. A call that takes several
//! turns of the event loop without going back to Lua (`run`, waiting alone)
//! returns as soon as that hook appears. The signal hold of the core
//! (sys::SignalsHeld) covers a handler that runs on this thread; this covers
//! one that ran on another thread of a host that has several.

use std::os::raw::c_int;

use mlua::ffi::{self, lua_State};
use mlua::Lua;

/// The state's main thread, whose hook the interpreters set.
#[derive(Clone, Copy)]
pub struct MainThread(*mut lua_State);

impl MainThread {
    /// Found once, when the state is set up. On Lua 5.1 there is no way to
    /// name the main thread; the thread that loads the library is taken
    /// (the main one, unless it is required from a coroutine). LuaJIT's
    /// hooks are global, so any thread of the state will do.
    pub fn of(lua: &Lua) -> mlua::Result<MainThread> {
        let mut main = std::ptr::null_mut();
        // SAFETY: exec_raw runs this in protected mode on the state's stack;
        // the registry slot holds the main thread on 5.2+ (the reference
        // manual's LUA_RIDX_MAINTHREAD), and the value pushed is popped.
        unsafe {
            lua.exec_raw::<()>((), |l| {
                main = l;
                #[cfg(any(feature = "lua54", feature = "lua53"))]
                {
                    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_MAINTHREAD);
                    let t = ffi::lua_tothread(l, -1);
                    if !t.is_null() {
                        main = t;
                    }
                    ffi::lua_pop(l, 1);
                }
            })?;
        }
        Ok(MainThread(main))
    }

    /// The hook as it is now, to compare with later.
    pub fn watch(self) -> HookWatch {
        HookWatch { main: self, at_start: self.hook() }
    }

    fn hook(self) -> (Option<usize>, c_int) {
        // SAFETY: the main thread lives as long as the state, which outlives
        // every call made from it; both functions only read its fields.
        unsafe { (ffi::lua_gethook(self.0).map(|h| h as usize), ffi::lua_gethookmask(self.0)) }
    }
}

/// The main thread's hook when a loop began.
pub struct HookWatch {
    main: MainThread,
    at_start: (Option<usize>, c_int),
}

impl HookWatch {
    /// Whether the hook changed since: the host wants Lua to run.
    pub fn changed(&self) -> bool {
        self.main.hook() != self.at_start
    }
}
