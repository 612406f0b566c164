#!/bin/sh
# Install the rock with `luarocks make` (offline) into local trees:
#   build/rocks/lua5.4  for Lua 5.4
#   build/rocks/luajit  for LuaJIT (Lua 5.1 ABI, interpreter luajit)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
spec=rockspec/lua-exec-scm-1.rockspec
mkdir -p build/rocks

# LuaRocks' server is not needed: the rock has no dependencies beyond Lua.
cat > build/rocks/config-luajit.lua <<CFG
lua_interpreter = "luajit"
variables = { LUA_DIR = "/usr", LUA_BINDIR = "/usr/bin", LUA_INCDIR = "/usr/include/luajit-2.1" }
CFG

echo "== luarocks make (Lua 5.4) -> build/rocks/lua5.4"
luarocks --lua-version 5.4 --tree build/rocks/lua5.4 make --deps-mode none "$spec" >build/rocks/lua5.4.log 2>&1 ||
  { cat build/rocks/lua5.4.log; exit 1; }
echo "== luarocks make (LuaJIT) -> build/rocks/luajit"
LUAROCKS_CONFIG=build/rocks/config-luajit.lua \
  luarocks --lua-version 5.1 --tree build/rocks/luajit make --deps-mode none "$spec" >build/rocks/luajit.log 2>&1 ||
  { cat build/rocks/luajit.log; exit 1; }
ls build/rocks/lua5.4/lib/lua/5.4/exec.so build/rocks/luajit/lib/lua/5.1/exec.so
