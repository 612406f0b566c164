# Sourced by test.sh and run-examples.sh: run a command in a session of its
# own, then find what it left behind. Every process a spec or an example
# starts (and does not detach) is in that session, whatever its parent
# became, so a child the library failed to end shows up here.

# run_in_session SIDFILE CMD...: CMD's exit status; its session id in SIDFILE.
run_in_session() {
  sidfile=$1
  shift
  setsid -w sh -c 'echo $$ >"$0"; exec "$@"' "$sidfile" "$@"
}

# left_in_session SIDFILE LABEL: prints "ok" or "not ok" with what is left
# (then kills it, so that one failure does not spill into the next run).
# What was just killed gets the library's 1 s grace and a moment more.
left_in_session() {
  sid=$(cat "$1" 2>/dev/null)
  rm -f "$1"
  left=""
  if [ -n "$sid" ]; then
    i=0
    while [ $i -lt 40 ]; do
      left=$(ps -e -o sid=,pid=,ppid=,stat=,args= | awk -v s="$sid" '$1 == s')
      [ -z "$left" ] && break
      sleep 0.1
      i=$((i + 1))
    done
  fi
  if [ -n "$left" ]; then
    echo "not ok no process left behind by $2:"
    echo "$left" | sed 's/^/#   /'
    kill -KILL $(echo "$left" | awk '{print $2}') 2>/dev/null
    return 1
  fi
  echo "ok no process left behind by $2"
  return 0
}
