#!/bin/sh
# make check: the quick loop while working (make test is what CI runs).
# cargo test, clippy, then every spec under Lua 5.4 in a session of its own
# (nothing may be left running). Ends with "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p build/test
. scripts/session.sh
failed=0
cargo test --release >build/test/cargo.log 2>&1 || failed=1
grep -E "^test result:|FAILED|panicked" build/test/cargo.log
cargo clippy --release --features lua54 --all-targets --target-dir target/clippy -- -D warnings >build/test/clippy.log 2>&1 \
  || { grep -E "^(error|warning)" -A6 build/test/clippy.log | head -40; failed=1; }
LUA_CPATH="$top/build/lua5.4/?.so;;" run_in_session build/test/check.sid \
  timeout 900 lua5.4 /usr/bin/busted -o TAP "$@" >build/test/check.tap 2>build/test/check.err
rc=$?
left_in_session build/test/check.sid "the specs" || failed=1
p=$(grep -c "^ok " build/test/check.tap); f=$(grep -c "^not ok " build/test/check.tap)
[ "$f" != 0 ] && awk '/^not ok/{show=1} /^ok /{show=0} show' build/test/check.tap | head -100
[ "$rc" != 0 ] && [ "$f" = 0 ] && { tail -20 build/test/check.err; f=1; }
[ "$failed" != 0 ] && f=$((f + 1))
echo "$p passed, $f failed"
[ "$f" = 0 ]
