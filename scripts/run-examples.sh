#!/bin/sh
# Run every example under Lua 5.4 and LuaJIT, loading exec.so from the rock
# trees that scripts/install-rock.sh made, and print what each one prints.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/session.sh
status=0
for lua in lua5.4 luajit; do
  case $lua in
    lua5.4) cpath="build/rocks/lua5.4/lib/lua/5.4/?.so" ;;
    luajit) cpath="build/rocks/luajit/lib/lua/5.1/?.so" ;;
  esac
  for ex in examples/[0-9]*.lua; do
    echo "== $lua $ex"
    mkdir -p build
    if ! LUA_CPATH="$cpath;;" run_in_session build/example.sid $lua examples/run.lua "$ex"; then
      echo "!! $ex failed under $lua"
      status=1
    fi
    # No process an example started may outlive it.
    left_in_session build/example.sid "$ex under $lua" >build/example.left || { cat build/example.left; status=1; }
  done
done
exit $status
