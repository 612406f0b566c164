#!/bin/sh
# cargo test (the Lua-free core), then the busted specs under Lua 5.4 and
# LuaJIT against build/<abi>/exec.so. Ends with one line "N passed, N failed"
# summing all three (skipped specs are counted and listed separately).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p build/test
passed=0 failed=0 skipped=0
. scripts/session.sh

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

# Count one busted TAP run into the totals: tally <label> <tap> <stderr> <exit code>
tally() {
  p=$(grep -c "^ok " "$2"); s=$(grep -c "^ok .*# SKIP" "$2"); f=$(grep -c "^not ok " "$2")
  p=$((p - s))
  grep -E "^(not ok|ok .*# SKIP)" "$2" | head -50
  if [ "$4" != 0 ] && [ "$f" = 0 ]; then
    # busted itself failed (a spec file that does not load, a crash, a timeout)
    echo "busted ($1) exited $4:"; tail -20 "$3"; tail -5 "$2"
    f=1
  fi
  # TAP puts the failure details after each "not ok"; show them.
  [ "$f" != 0 ] && awk '/^not ok/{show=1} /^ok /{show=0} show' "$2" | head -150
  echo "$1: $p passed, $f failed, $s skipped"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

interpreters="lua5.4 luajit"
for extra in lua5.3 lua5.1; do
  command -v $extra >/dev/null && [ -f build/$extra/exec.so ] && interpreters="$interpreters $extra"
done
# Each busted run is a session of its own: afterwards no process a spec
# started may be left (left_in_session, scripts/session.sh).
check_left() {
  if left_in_session build/test/$1.sid "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

for lua in $interpreters; do
  echo "== busted under $lua"
  LUA_CPATH="$top/build/$lua/?.so;;" run_in_session build/test/$lua.sid \
    timeout 1500 $lua /usr/bin/busted -o TAP "$@" >build/test/$lua.tap 2>build/test/$lua.err
  tally "$lua" build/test/$lua.tap build/test/$lua.err $?
  check_left $lua "the specs under $lua"
done

# The specs of how children end, groups, timeouts and the guarantees of the
# README (spec/README.md says which file holds which).
nopidfd_specs="spec/lifecycle_spec.lua spec/groups_spec.lua spec/timeouts_spec.lua spec/interrupts_spec.lua
  spec/state_end_spec.lua spec/streams_spec.lua spec/stdin_spec.lua spec/run_spec.lua spec/scheduler_spec.lua
  spec/commands_spec.lua"
echo "== the guarantees without pidfds (the fallback for old kernels), under lua5.4"
LUA_EXEC_NO_PIDFD=1 LUA_CPATH="$top/build/lua5.4/?.so;;" run_in_session build/test/nopidfd.sid \
  timeout 900 lua5.4 /usr/bin/busted -o TAP $nopidfd_specs >build/test/nopidfd.tap 2>build/test/nopidfd.err
tally "lua5.4 without pidfds" build/test/nopidfd.tap build/test/nopidfd.err $?
check_left nopidfd "the specs without pidfds"

# The path rules of restricted executors where the kernel lacks openat2
# (before Linux 5.6): the walk that follows no symlink.
echo "== the path rules without openat2 (the walk for old kernels), under lua5.4"
LUA_EXEC_NO_OPENAT2=1 LUA_CPATH="$top/build/lua5.4/?.so;;" run_in_session build/test/noopenat2.sid \
  timeout 600 lua5.4 /usr/bin/busted -o TAP spec/policy_spec.lua spec/redirections_spec.lua spec/attributes_spec.lua \
  >build/test/noopenat2.tap 2>build/test/noopenat2.err
tally "lua5.4 without openat2" build/test/noopenat2.tap build/test/noopenat2.err $?
check_left noopenat2 "the specs without openat2"

echo "== everything with fork + exec instead of posix_spawn (the path for glibc < 2.34 and musl), under lua5.4"
LUA_EXEC_FORK_SPAWN=1 LUA_CPATH="$top/build/lua5.4/?.so;;" run_in_session build/test/fork.sid \
  timeout 1500 lua5.4 /usr/bin/busted -o TAP "$@" >build/test/fork.tap 2>build/test/fork.err
tally "lua5.4 with the fork path" build/test/fork.tap build/test/fork.err $?
check_left fork "the specs on the fork path"

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

echo "== the documents render: every code fence they open is closed"
fences_ok=true
for doc in README.md docs/*.md bench/README.md spec/README.md; do
  awk '/^```/ { open = !open; line = NR } END { if (open) { print FILENAME ":" line ": a code fence is never closed"; exit 1 } }' "$doc" || fences_ok=false
done
if $fences_ok; then
  echo "ok code fences of README.md, docs/, bench/ and spec/"; passed=$((passed + 1))
else
  echo "not ok code fences"; failed=$((failed + 1))
fi

echo "== make dist, then the literal luarocks install lua-exec from it, offline (lua5.4, luajit)"
if sh scripts/dist.sh >build/test/dist.log 2>&1; then
  echo "ok make dist"; passed=$((passed + 1))
  sh scripts/offline-install.sh >build/test/offline.log 2>&1
  grep -E "^(ok|not ok)" build/test/offline.log
  o=$(grep -c "^ok " build/test/offline.log); n=$(grep -c "^not ok " build/test/offline.log)
  [ "$n" = 0 ] || tail -40 build/test/offline.log
  [ "$o" = 2 ] || [ "$n" != 0 ] || { echo "not ok offline install printed no results"; n=1; }
  passed=$((passed + o)); failed=$((failed + n))
else
  tail -20 build/test/dist.log; echo "not ok make dist"; failed=$((failed + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
