package = "lua-exec"
version = "0.1.0-1"
-- The release: `make dist` builds this archive (the tree at the release
-- commit plus every crate it needs, vendored, so that building needs no
-- network) and dist/lua-exec-0.1.0-1.src.rock around it; the release step
-- uploads the archive to this address and the rock to LuaRocks.
source = {
   url = "https://github.com/lua-exec/lua-exec/releases/download/v0.1.0/lua-exec-0.1.0.tar.gz",
   dir = "lua-exec-0.1.0",
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
   -- LuaLS annotations, installed beside the rock (lib/luarocks/rocks-*/lua-exec/0.1.0-1/types).
   copy_directories = { "types" },
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
   },
}
