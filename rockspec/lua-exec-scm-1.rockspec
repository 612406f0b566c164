package = "lua-exec"
version = "scm-1"
source = {
   url = "git+file:///dev/null/lua-exec", -- built in place with `luarocks make`
}
description = {
   summary = "Child processes for Lua: pipes, signals, exit codes, coroutines",
   detailed = [[
      require("exec") in stock Lua 5.4 or LuaJIT: start programs, write their
      stdin, read stdout and stderr as streams, send signals, wait for exit
      codes, many processes at once driven by coroutines. A Rust library
      (posix_spawn, epoll, pidfd) with a small Lua scheduler built in.
   ]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1",
}
build = {
   -- Offline: cargo builds the library through the Makefile; no rock from
   -- the LuaRocks server is needed.
   type = "make",
   build_target = "rock",
   build_variables = {
      LUA = "$(LUA)",
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
   install_target = "rock-install",
   -- LuaLS annotations, installed beside the rock (lib/luarocks/rocks-*/lua-exec/scm-1/types).
   copy_directories = { "types" },
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
   },
}
