//! A stream's line read as a C function, for Lua 5.3 and 5.4.
//!
//! Reading lines one call at a time is what a `for` loop over
//! `s:read("l")` or `s:lines()` does, millions of times. Through mlua each
//! call would cost a callback's protected frame, and through a Lua wrapper
//! a dozen VM instructions: either way more than liolib's own line read.
//! So the common case, a complete line already in the stream's buffer, is
//! served here by a plain C closure, as liolib serves a file's lines: no
//! system call, no Lua frame, one string push.
//!
//! Everything else (no complete line buffered, a timeout argument, another
//! format, a closed stream, a Lua state that is closing) is handed to the
//! Lua function `fallback` with the same arguments, through `lua_callk`,
//! so that it may park the coroutine (yield), and its results or errors
//! pass through unchanged.
//!
//! A lines scanner (`stream:scanner()`, lua/exec/scanner.lua) gets the
//! same: its `scan` takes a buffered line (less a "\r" before the newline)
//! into the scanner's token table and returns true, its `text` returns the
//! token, each one C call; the Lua code does the rest (a line not yet
//! buffered, the end, errors).
//!
//! LuaJIT and Lua 5.1 cannot yield across a C call, so they keep the Lua
//! queue of lines in `lua/exec/stream.lua`.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::rc::Rc;

use mlua::ffi::{self, lua_State};
use mlua::{Function, Lua, Table, Value};

use crate::core::io::stream::BufferedLines;

// The closure's upvalues.
/// The stream object a method call must be made on (`s:read("l")`), kept
/// so that its address (in the slot) is not reused while the closure lives.
const UP_SELF: c_int = 1;
/// The Lua function that does everything else.
const UP_FALLBACK: c_int = 2;
/// The `Slot` (a full userdata).
const UP_SLOT: c_int = 3;
const UPVALUES: c_int = 3;
/// A scanner's closures also have its token table: [1] the current token,
/// [2] true once the scanner is done (its Lua code then answers).
const UP_TOKEN: c_int = 4;
const SCANNER_UPVALUES: c_int = 4;

/// What the closure holds in Rust. It is a Lua userdata whose `__gc`
/// empties it (and never frees it: Lua frees the memory, and a userdata
/// resurrected after its `__gc` finds an empty, valid slot).
struct Slot {
    source: Option<Source>,
    /// The address of the stream object (upvalue UP_SELF), or null.
    me: *const c_void,
    /// A line is copied here, and the stream released, before its string
    /// is made: making it may raise (out of memory), and an error must not
    /// leave the stream borrowed.
    line: Vec<u8>,
    /// Lines also lose a "\r" at their end (a scanner's lines).
    drop_cr: bool,
}

/// What a slot reads, until its `__gc` empties it.
struct Source {
    lines: BufferedLines,
    /// The state's closing flag (`StateCtx::closing`).
    closing: Rc<Cell<bool>>,
}

const SLOT_METATABLE: &std::ffi::CStr = c"exec.line_reader";

/// `__gc` of a slot: drop what it holds, leave it valid and empty.
unsafe extern "C-unwind" fn slot_gc(l: *mut lua_State) -> c_int {
    // SAFETY: this is the __gc of the metatable set only on slots, whose
    // memory was initialised before the metatable was set (`new`).
    unsafe {
        let slot = ffi::lua_touserdata(l, 1).cast::<Slot>();
        if !slot.is_null() {
            (*slot).source = None;
            (*slot).line = Vec::new();
        }
    }
    0
}

/// The slot of the running closure.
///
/// # Safety
/// `l` runs one of the closures made by `new`.
unsafe fn slot<'a>(l: *mut lua_State) -> &'a mut Slot {
    // SAFETY: upvalue UP_SLOT of those closures is an initialised Slot,
    // reachable (and so alive) while the closure runs.
    unsafe { &mut *ffi::lua_touserdata(l, ffi::lua_upvalueindex(UP_SLOT)).cast::<Slot>() }
}

/// The buffered line of the closure's stream, pushed onto the stack: true;
/// or false, with nothing pushed, if none is at hand (or the state is
/// closing).
///
/// # Safety
/// `l` runs one of the closures made by `new`, and nothing else holds its
/// slot.
unsafe fn push_buffered_line(l: *mut lua_State, slot: &mut Slot) -> bool {
    let Some(source) = &slot.source else { return false };
    if source.closing.get() {
        return false;
    }
    let line = &mut slot.line;
    let drop_cr = slot.drop_cr;
    let found = source.lines.next(false, |bytes| {
        let bytes = match bytes {
            [rest @ .., b'\r'] if drop_cr => rest,
            _ => bytes,
        };
        line.clear();
        line.extend_from_slice(bytes);
    });
    if found.is_none() {
        return false;
    }
    // SAFETY: the stream is released; the push copies the bytes, and if
    // it raises (out of memory) nothing of ours is left to drop.
    unsafe { ffi::lua_pushlstring(l, slot.line.as_ptr().cast(), slot.line.len()) };
    true
}

/// Call the fallback with this call's arguments and return what it returns.
///
/// # Safety
/// `l` runs one of the closures made by `new`.
unsafe fn call_fallback(l: *mut lua_State) -> c_int {
    // SAFETY: the fallback goes below the arguments and is called with all
    // of them; `lua_callk` lets it yield (the continuation returns its
    // results), and its errors propagate with no Rust value live here.
    unsafe {
        let nargs = ffi::lua_gettop(l);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(UP_FALLBACK));
        ffi::lua_rotate(l, 1, 1);
        ffi::lua_callk(l, nargs, ffi::LUA_MULTRET, 0, Some(return_all));
        ffi::lua_gettop(l)
    }
}

/// The continuation of `call_fallback` after a yield: its results are all
/// that is on the stack.
unsafe extern "C-unwind" fn return_all(l: *mut lua_State, _status: c_int, _ctx: ffi::lua_KContext) -> c_int {
    // SAFETY: l is the running thread.
    unsafe { ffi::lua_gettop(l) }
}

/// Whether the call is `s:read("l")` on the closure's own stream object,
/// with no timeout.
///
/// # Safety
/// `l` runs one of the closures made by `new`.
unsafe fn is_plain_line_read(l: *mut lua_State, slot: &Slot) -> bool {
    // SAFETY: only reads of the call's arguments; the string pointer is
    // read while the string is on the stack.
    unsafe {
        let top = ffi::lua_gettop(l);
        if !(top == 2 || (top == 3 && ffi::lua_type(l, 3) == ffi::LUA_TNIL)) {
            return false;
        }
        if ffi::lua_type(l, 2) != ffi::LUA_TSTRING || ffi::lua_topointer(l, 1) != slot.me {
            return false;
        }
        let mut len = 0;
        let p = ffi::lua_tolstring(l, 2, &mut len);
        len == 1 && *p.cast::<u8>() == b'l'
    }
}

/// `s:read(fmt, timeout)`: a buffered line when called as `s:read("l")`.
unsafe extern "C-unwind" fn read_method(l: *mut lua_State) -> c_int {
    // SAFETY: this function is only made into closures by `new`.
    unsafe {
        let slot = slot(l);
        if is_plain_line_read(l, slot) && push_buffered_line(l, slot) {
            return 1;
        }
        call_fallback(l)
    }
}

/// The iterator of `s:lines()`: a buffered line, whatever `for` passes.
unsafe extern "C-unwind" fn lines_iterator(l: *mut lua_State) -> c_int {
    // SAFETY: this function is only made into closures by `new`.
    unsafe {
        if push_buffered_line(l, slot(l)) {
            return 1;
        }
        call_fallback(l)
    }
}

/// `scanner:scan()`: a buffered line, stored as the token, and true.
unsafe extern "C-unwind" fn scan_method(l: *mut lua_State) -> c_int {
    // SAFETY: this function is only made into closures by `new_scanner`,
    // whose upvalue UP_TOKEN is a table. The value rawgeti pushes is popped
    // before the fallback sees the stack; rawseti pops the line (slot [1]
    // exists, so it allocates nothing).
    unsafe {
        let slot = slot(l);
        if ffi::lua_topointer(l, 1) == slot.me {
            let done = ffi::lua_rawgeti(l, ffi::lua_upvalueindex(UP_TOKEN), 2) != ffi::LUA_TNIL;
            ffi::lua_pop(l, 1);
            if !done && push_buffered_line(l, slot) {
                ffi::lua_rawseti(l, ffi::lua_upvalueindex(UP_TOKEN), 1);
                ffi::lua_pushboolean(l, 1);
                return 1;
            }
        }
        call_fallback(l)
    }
}

/// `scanner:text()`: the token.
unsafe extern "C-unwind" fn text_method(l: *mut lua_State) -> c_int {
    // SAFETY: as for scan_method.
    unsafe {
        if ffi::lua_topointer(l, 1) == slot(l).me {
            ffi::lua_rawgeti(l, ffi::lua_upvalueindex(UP_TOKEN), 1);
            return 1;
        }
        call_fallback(l)
    }
}

/// Push a new slot for the object at `me`, holding what `held` holds, and
/// list it in the table of live userdata at stack index `live` (so that
/// state end empties it: state_end.rs).
///
/// # Safety
/// Runs inside `exec_raw` (protected mode) with room for three more values.
/// Until the slot's memory is written, the Rust values stay in `held` in
/// the caller's frame (taken only for the write), so an allocation error
/// before then drops them normally; the metatable (with __gc) is set just
/// before the write, with no call that could raise in between.
unsafe fn push_slot(l: *mut lua_State, held: &mut Option<Source>, me: *const c_void, drop_cr: bool, live: c_int) {
    // SAFETY: see above; the userdata is as big as a Slot and Lua aligns
    // it for any type of its own (checked below in debug builds).
    unsafe {
        let p = ffi::lua_newuserdata(l, std::mem::size_of::<Slot>()).cast::<Slot>();
        ffi::luaL_newmetatable(l, SLOT_METATABLE.as_ptr());
        ffi::lua_pushcfunction(l, slot_gc);
        ffi::lua_setfield(l, -2, c"__gc".as_ptr());
        debug_assert!((p as usize).is_multiple_of(std::mem::align_of::<Slot>()));
        ffi::lua_setmetatable(l, -2);
        p.write(Slot { source: held.take(), me, line: Vec::new(), drop_cr });
        ffi::lua_pushvalue(l, -1);
        ffi::lua_pushboolean(l, 1);
        ffi::lua_rawset(l, live);
    }
}

/// A C closure reading `lines` (the buffered lines of the stream object
/// `me`): `s:read` when `iterator` is false, the iterator of `s:lines()`
/// when true; `fallback` does whatever it does not. While `closing` is set
/// it always falls back. Its slot is listed in `live` (mod.rs, `LIVE_KEY`).
pub(crate) fn new(
    lua: &Lua,
    lines: BufferedLines,
    closing: Rc<Cell<bool>>,
    me: Value,
    fallback: Function,
    iterator: bool,
    live: Table,
) -> mlua::Result<Function> {
    let mut held = Some(Source { lines, closing });
    let func: ffi::lua_CFunction = if iterator { lines_iterator } else { read_method };
    // SAFETY: exec_raw runs this in protected mode with `me`, `fallback`
    // and the table of live userdata (state_end.rs) at stack 1-3 (see
    // push_slot for the slot's safety). Once written, the slot is a whole,
    // finalizable userdata: if listing it or making the closure raises,
    // the collector empties it. The table leaves the stack before the
    // closure takes its upvalues.
    unsafe {
        lua.exec_raw((me, fallback, live), |l| {
            let me = ffi::lua_topointer(l, UP_SELF);
            push_slot(l, &mut held, me, false, 3);
            ffi::lua_remove(l, 3);
            debug_assert_eq!(ffi::lua_gettop(l), UPVALUES);
            ffi::lua_pushcclosure(l, func, UPVALUES);
        })
    }
}

/// The `scan` and `text` methods of the lines scanner `me` (its Lua code
/// in scanner.lua) over `lines`: C closures sharing one slot and the
/// scanner's `token` table; `fallbacks` (scan's, text's) do what they do
/// not. While `closing` is set scan always falls back.
pub(crate) fn new_scanner(
    lua: &Lua,
    lines: BufferedLines,
    closing: Rc<Cell<bool>>,
    me: Value,
    fallbacks: [Function; 2],
    token: Table,
    live: Table,
) -> mlua::Result<(Function, Function)> {
    let mut held = Some(Source { lines, closing });
    let [scan, text] = fallbacks;
    // SAFETY: exec_raw runs this in protected mode with `me`, the two
    // fallbacks, `token` and the table of live userdata at stack 1-5 (see
    // push_slot for the slot's safety); the slot, listed, goes to 5 once
    // the table is removed, each closure takes copies of its four
    // upvalues, and the two closures are all that is left on the stack.
    unsafe {
        lua.exec_raw((me, scan, text, token, live), |l| {
            let me = ffi::lua_topointer(l, UP_SELF);
            push_slot(l, &mut held, me, true, 5);
            ffi::lua_remove(l, 5);
            let methods: [(c_int, ffi::lua_CFunction); 2] = [(2, scan_method), (3, text_method)];
            for (fallback, func) in methods {
                ffi::lua_pushvalue(l, 1);
                ffi::lua_pushvalue(l, fallback);
                ffi::lua_pushvalue(l, 5);
                ffi::lua_pushvalue(l, 4);
                ffi::lua_pushcclosure(l, func, SCANNER_UPVALUES);
            }
            ffi::lua_rotate(l, 1, 2);
            ffi::lua_settop(l, 2);
        })
    }
}
