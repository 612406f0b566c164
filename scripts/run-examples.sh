#!/bin/sh
# Run every example under Lua 5.4 and LuaJIT, loading exec.so from the rock
# trees that scripts/install-rock.sh made, and print what each one prints.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
status=0
for lua in lua5.4 luajit; do
  case $lua in
    lua5.4) cpath="build/rocks/lua5.4/lib/lua/5.4/?.so" ;;
    luajit) cpath="build/rocks/luajit/lib/lua/5.1/?.so" ;;
  esac
  for ex in examples/[0-9]*.lua; do
    echo "== $lua $ex"
    if ! LUA_CPATH="$cpath;;" $lua examples/run.lua "$ex"; then
      echo "!! $ex failed under $lua"
      status=1
    fi
  done
done
exit $status
