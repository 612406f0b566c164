//! A Lua function run with a bound on how much the state's memory may grow
//! meanwhile: what makes `exec.registry.load` evaluate a Lua resource file
//! within a memory limit (lua/exec/registry.lua).
//!
//! For the call only, the state's allocator is wrapped (lua_getallocf,
//! lua_setallocf): the wrapper delegates every request to the original
//! function and counts the net bytes it hands out (what is allocated or
//! grown, less what is freed or shrunk), and fails a request that would
//! take the count past the limit, which Lua reports as a memory error.
//! Counting bytes, not instructions, stops a single concatenation of many
//! operands as well as a loop. A state made by `lua_newstate` with an
//! allocator of ours would do too, but 64-bit LuaJIT makes states with its
//! own allocator only, and values would have to be copied across states.
//!
//! The call is protected (lua_pcall), so the original allocator is back in
//! place whatever happens in it (an error, Ctrl-C's "interrupted!", a
//! memory error) before anything is returned to Lua.

use std::ffi::{c_int, c_void};

use mlua::ffi::{self, lua_Alloc};
use mlua::{Function, Lua, MultiValue};

/// The wrapper's state, on the stack of `within_memory` for the call.
struct Budget {
    original: lua_Alloc,
    original_ud: *mut c_void,
    /// Net bytes handed out since the call began (negative if it freed
    /// more than it took).
    used: isize,
    limit: isize,
    /// A request was refused.
    hit: bool,
}

/// The allocator while the call runs: the original one, counted.
unsafe extern "C" fn counting(ud: *mut c_void, ptr: *mut c_void, osize: usize, nsize: usize) -> *mut c_void {
    // SAFETY: `ud` is the Budget that `within_memory` installed with this
    // function and keeps alive until it restores the original allocator.
    let budget = unsafe { &mut *ud.cast::<Budget>() };
    // Without a block, Lua 5.4 passes the kind of object in `osize`.
    let old = if ptr.is_null() { 0 } else { osize };
    let delta = nsize as isize - old as isize;
    if delta > 0 && budget.used.saturating_add(delta) > budget.limit {
        budget.hit = true;
        return std::ptr::null_mut();
    }
    // SAFETY: the original allocator, with its own data and the request
    // unchanged.
    let p = unsafe { (budget.original)(budget.original_ud, ptr, osize, nsize) };
    if !p.is_null() || nsize == 0 {
        budget.used += delta;
    }
    p
}

/// `core.within_memory(limit, f, ...)`: calls `f(...)` while the state's
/// memory may grow by at most `limit` bytes. Returns whether it stayed
/// within the limit (false: an allocation was refused; Lua 5.2+ collect
/// garbage and try once more before they raise a memory error), then what
/// `pcall(f, ...)` returns.
pub fn within_memory(lua: &Lua, (limit, f, args): (usize, Function, MultiValue)) -> mlua::Result<MultiValue> {
    let limit = isize::try_from(limit).unwrap_or(isize::MAX);
    // SAFETY: exec_raw runs this in protected mode with `f` and its
    // arguments on the stack. The Budget lives in this frame, and the
    // original allocator is put back before the frame ends: lua_pcall
    // returns in every case (errors in `f` are caught), and nothing between
    // the two lua_setallocf calls can raise. Blocks allocated through the
    // wrapper are the original allocator's, so freeing them later without
    // it is right. The frame holds no value with a destructor.
    unsafe {
        lua.exec_raw((f, args), |l| {
            let nargs = ffi::lua_gettop(l) - 1;
            let mut original_ud = std::ptr::null_mut();
            let original = ffi::lua_getallocf(l, &mut original_ud);
            let mut budget = Budget { original, original_ud, used: 0, limit, hit: false };
            ffi::lua_setallocf(l, counting, (&mut budget as *mut Budget).cast());
            let status = ffi::lua_pcall(l, nargs, ffi::LUA_MULTRET, 0);
            ffi::lua_setallocf(l, original, original_ud);
            // On the stack: f's results, or its error value. (Should there
            // be no room for two more, the error raised here is Lua's own.)
            ffi::luaL_checkstack(l, 2, std::ptr::null());
            ffi::lua_pushboolean(l, (status == ffi::LUA_OK) as c_int);
            ffi::lua_insert(l, 1);
            ffi::lua_pushboolean(l, !budget.hit as c_int);
            ffi::lua_insert(l, 1);
        })
    }
}
