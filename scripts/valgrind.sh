#!/bin/sh
# Run a representative subset of the specs, and the state-end cases of
# spec/state_end.lua, under valgrind's memcheck with Lua 5.4, and fail on
# any invalid read/write, use of uninitialised memory, or definitely lost
# block. "Possibly lost" and "still reachable" blocks are
# process-lifetime statics (the child table, the reaper thread's stack) and
# are not errors. Valgrind 3.19 does not know pidfd_open (syscall 434): it
# answers ENOSYS, so this run also exercises the no-pidfd fallback.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
command -v valgrind >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -q valgrind >/dev/null; }
mkdir -p build/test
rm -f build/test/valgrind.*.log # (this run's logs only)
LUA_CPATH="$top/build/lua5.4/?.so;;" valgrind --tool=memcheck --error-exitcode=99 \
  --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
  --log-file=build/test/valgrind.%p.log \
  lua5.4 /usr/bin/busted -o TAP spec/registry_spec.lua spec/process_spec.lua spec/commands_spec.lua \
  spec/signals_spec.lua spec/streams_spec.lua spec/stdin_spec.lua spec/reads_spec.lua \
  spec/scheduler_spec.lua spec/ssh_spec.lua >build/test/valgrind.tap 2>&1
rc=$?
# (Forked children that exec'd leave a log with the same command and no
# summary: the main one is the log with both.)
main_log=$(grep -l "ERROR SUMMARY" $(grep -l "Command: lua5.4 /usr/bin/busted" build/test/valgrind.*.log) | head -1)
grep -E "ERROR SUMMARY|definitely lost|in use at exit" "$main_log"
p=$(grep -c "^ok " build/test/valgrind.tap); f=$(grep -c "^not ok " build/test/valgrind.tap)
echo "valgrind run: $p specs passed, $f failed, busted+memcheck exit $rc"
grep -A8 "^not ok" build/test/valgrind.tap | head -40
# The state's end: a finalizer that calls the library while lua_close runs
# the finalizers (spec/state_end.lua), wherever it was made. Leaks count
# too: a handle made by such a finalizer is freed all the same. (Not the
# case before-a-later-user: there mlua's "userdata has been destructed"
# errors, made while the state closes, are never finalized by Lua 5.4.)
se_rc=0
for case in issue before-module before-handles between-handles after-all; do
  LUA_CPATH="$top/build/lua5.4/?.so;;" valgrind --tool=memcheck --error-exitcode=99 \
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --log-file="build/test/valgrind.state_end.$case.log" \
    lua5.4 spec/state_end.lua "$case" >"build/test/state_end.$case.out" 2>&1
  c=$?
  echo "state end ($case): $(grep -c '^CALL' "build/test/state_end.$case.out") calls," \
    "$(grep -o 'ERROR SUMMARY: [0-9]* errors' "build/test/valgrind.state_end.$case.log"), exit $c"
  [ "$c" = 0 ] || { se_rc=1; grep -B2 -A12 "Invalid\|definitely lost in" "build/test/valgrind.state_end.$case.log" | head -40; }
done
rm -f build/test/valgrind.*.log.keep
[ "$rc" = 0 ] && [ "$f" = 0 ] && [ "$se_rc" = 0 ]
