#!/bin/sh
# cargo test (the Lua-free core), then the busted specs under Lua 5.4 and
# LuaJIT against build/<abi>/exec.so. Ends with one line "N passed, N failed"
# summing all three (skipped specs are counted and listed separately).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p build/test
passed=0 failed=0 skipped=0

echo "== cargo test (core)"
cargo test --release 2>&1 | tee build/test/cargo.log | grep -E "test result:|FAILED|panicked|^error" || true
c_pass=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' build/test/cargo.log | awk '{s+=$1} END {print s+0}')
c_fail=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' build/test/cargo.log | awk '{s+=$1} END {print s+0}')
if ! grep -q "^test result:" build/test/cargo.log; then c_fail=$((c_fail + 1)); echo "cargo test did not run"; fi
# The child table once more without pidfds (old kernels): groups are then
# kept reachable by a zombie leader instead of pidfd group signals.
LUA_EXEC_NO_PIDFD=1 cargo test --release children 2>&1 | tee build/test/cargo-nopidfd.log | grep -E "test result:|FAILED|panicked" || true
for log in build/test/cargo-nopidfd.log; do
  c_pass=$((c_pass + $(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' $log | awk '{s+=$1} END {print s+0}')))
  c_fail=$((c_fail + $(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' $log | awk '{s+=$1} END {print s+0}')))
done
# Lints: every unsafe block has a SAFETY note (lib.rs warns, -D denies).
if cargo clippy --release --features lua54 --all-targets --target-dir target/clippy -- -D warnings >build/test/clippy.log 2>&1; then
  c_pass=$((c_pass + 1)); echo "ok clippy"
else
  c_fail=$((c_fail + 1)); echo "not ok clippy"; grep -E "^(error|warning)" -A6 build/test/clippy.log | head -40
fi
echo "cargo: $c_pass passed, $c_fail failed"
passed=$((passed + c_pass)); failed=$((failed + c_fail))

interpreters="lua5.4 luajit"
for extra in lua5.3 lua5.1; do
  command -v $extra >/dev/null && [ -f build/$extra/exec.so ] && interpreters="$interpreters $extra"
done
for lua in $interpreters; do
  echo "== busted under $lua"
  LUA_CPATH="$top/build/$lua/?.so;;" timeout 1500 $lua /usr/bin/busted -o TAP "$@" >build/test/$lua.tap 2>build/test/$lua.err
  rc=$?
  grep -E "^(not ok|ok .*# SKIP)" build/test/$lua.tap | head -50
  p=$(grep -c "^ok " build/test/$lua.tap)
  s=$(grep -c "^ok .*# SKIP" build/test/$lua.tap)
  f=$(grep -c "^not ok " build/test/$lua.tap)
  p=$((p - s))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    # busted itself failed (a spec file that does not load, a crash, a timeout)
    echo "busted under $lua exited $rc:"; tail -20 build/test/$lua.err; tail -5 build/test/$lua.tap
    f=1
  fi
  if [ "$f" != 0 ]; then
    # TAP puts the failure details after each "not ok"; show them.
    awk '/^not ok/{show=1} /^ok /{show=0} show' build/test/$lua.tap | head -150
  fi
  echo "$lua: $p passed, $f failed, $s skipped"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done

echo "== the guarantees without pidfds (the fallback for old kernels), under lua5.4"
LUA_EXEC_NO_PIDFD=1 LUA_CPATH="$top/build/lua5.4/?.so;;" timeout 900 lua5.4 /usr/bin/busted -o TAP spec/guarantees_spec.lua >build/test/nopidfd.tap 2>build/test/nopidfd.err
rc=$?
p=$(grep -c "^ok " build/test/nopidfd.tap); s=$(grep -c "^ok .*# SKIP" build/test/nopidfd.tap); f=$(grep -c "^not ok " build/test/nopidfd.tap)
p=$((p - s))
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then tail -20 build/test/nopidfd.err; f=1; fi
[ "$f" != 0 ] && awk '/^not ok/{show=1} /^ok /{show=0} show' build/test/nopidfd.tap | head -80
echo "lua5.4 without pidfds: $p passed, $f failed, $s skipped"
passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))

echo "== the rock: luarocks make for both interpreters, then require from the trees"
if sh scripts/install-rock.sh >build/test/rock.log 2>&1; then
  for lua in lua5.4 luajit; do
    case $lua in lua5.4) cp="build/rocks/lua5.4/lib/lua/5.4/?.so" ;; luajit) cp="build/rocks/luajit/lib/lua/5.1/?.so" ;; esac
    if LUA_CPATH="$cp" LUA_PATH="" $lua -e 'local e = require("exec"); local p = e.get("process:native"):exec("echo rock"); p:start(); assert(p:stdout_stream():read() == "rock\n"); assert(p:wait() == 0)'; then
      echo "ok rock under $lua"; passed=$((passed + 1))
    else
      echo "not ok rock under $lua"; failed=$((failed + 1))
    fi
  done
else
  cat build/test/rock.log; echo "not ok luarocks make"; failed=$((failed + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
