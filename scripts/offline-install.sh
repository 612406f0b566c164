#!/bin/sh
# The literal `luarocks install lua-exec`, offline: dist/ (from scripts/dist.sh)
# is served as a local rocks server (luarocks-admin make_manifest), and the
# rock is installed from it alone (--only-server) into fresh trees for Lua 5.4
# and LuaJIT, with cargo unable to reach the network (CARGO_NET_OFFLINE, and
# a CARGO_HOME without any registry cache). Each tree must then load the
# module and run an example. Prints "ok ..." / "not ok ..." lines.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
status=0
work=$(mktemp -d /tmp/lua-exec-offline.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r dist "$work/server"
luarocks-admin make_manifest "$work/server" >"$work/manifest.log" 2>&1 ||
  { cat "$work/manifest.log"; echo "not ok make_manifest"; exit 1; }
mkdir -p "$work/cargo-home"
cat >"$work/config-luajit.lua" <<CFG
lua_interpreter = "luajit"
variables = { LUA_DIR = "/usr", LUA_BINDIR = "/usr/bin", LUA_INCDIR = "/usr/include/luajit-2.1" }
CFG
for lua in lua5.4 luajit; do
  tree="$work/tree-$lua"
  case $lua in
    lua5.4) ver=5.4; cfg= ; cpath="$tree/lib/lua/5.4/?.so" ;;
    luajit) ver=5.1; cfg="$work/config-luajit.lua"; cpath="$tree/lib/lua/5.1/?.so" ;;
  esac
  if env ${cfg:+LUAROCKS_CONFIG=$cfg} CARGO_NET_OFFLINE=true CARGO_HOME="$work/cargo-home" \
      luarocks --lua-version $ver --tree "$tree" install lua-exec --only-server="file://$work/server" \
      >"$work/install-$lua.log" 2>&1; then
    out=$(LUA_CPATH="$cpath" LUA_PATH="" $lua examples/run.lua examples/01_basic.lua 2>&1)
    if [ "$out" = "$(printf 'Output:\tHello World\n')" ]; then
      echo "ok luarocks install lua-exec (offline, local server) under $lua"
    else
      echo "not ok the installed module under $lua: $out"; status=1
    fi
  else
    tail -30 "$work/install-$lua.log"
    echo "not ok luarocks install lua-exec (offline, local server) under $lua"; status=1
  fi
done
exit $status
