#!/bin/sh
# make dist: what a release publishes, built without LuaRocks' server:
#   dist/lua-exec-<v>.tar.gz       the tree at HEAD plus every crate it needs,
#                                  vendored (cargo vendor), built with --offline
#   dist/lua-exec-<v>-1.rockspec   rockspec/lua-exec-<v>-1.rockspec
#   dist/lua-exec-<v>-1.src.rock   both together (what `luarocks pack` makes)
# <v> is the version in Cargo.toml; the versioned rockspec must say the same.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
v=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
spec=rockspec/lua-exec-$v-1.rockspec
[ -f "$spec" ] || { echo "dist: no $spec for version $v (Cargo.toml)" >&2; exit 1; }
grep -q "^version = \"$v-1\"" "$spec" || { echo "dist: $spec does not say version $v-1" >&2; exit 1; }
grep -q "lua-exec-$v.tar.gz\"" "$spec" || { echo "dist: $spec does not name lua-exec-$v.tar.gz" >&2; exit 1; }

stage=build/dist/lua-exec-$v
rm -rf build/dist dist
mkdir -p "$stage" dist
git archive --format=tar HEAD | tar -x -C "$stage"
# Every crate in Cargo.lock, and the configuration that makes cargo use
# them and never the network.
(cd "$stage" && cargo vendor --locked --versioned-dirs vendor >build-vendor.toml 2>../vendor.log) ||
  { cat build/dist/vendor.log >&2; exit 1; }
mkdir -p "$stage/.cargo"
{ cat "$stage/build-vendor.toml"; printf '\n[net]\noffline = true\n'; } >"$stage/.cargo/config.toml"
rm "$stage/build-vendor.toml"
tar -C build/dist -czf "dist/lua-exec-$v.tar.gz" "lua-exec-$v"
cp "$spec" dist/
(cd dist && zip -q "lua-exec-$v-1.src.rock" "lua-exec-$v-1.rockspec" "lua-exec-$v.tar.gz")
ls -l dist
