#!/bin/sh
# A throwaway OpenSSH server on 127.0.0.1 for the remote-executor specs.
#
#   scripts/sshd.sh start DIR   make host and user keys in DIR, start sshd on
#                               a free port; writes DIR/port, DIR/user,
#                               DIR/user_key, DIR/bad_key, DIR/known_hosts,
#                               DIR/sshd.log (INFO: one "Accepted" per login)
#   scripts/sshd.sh stop DIR    stop it
#
# sshd only lets in the user it runs as (root may log in with a key), with
# the keys made here; nothing outside DIR is touched except /run/sshd,
# which sshd needs for privilege separation when run as root.
set -eu
cmd=${1:?start or stop}
dir=${2:?directory}

case $cmd in
stop)
  [ -f "$dir/sshd.pid" ] && kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
  exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

sshd=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd" ] || { echo "sshd not found (install openssh-server)" >&2; exit 1; }
mkdir -p "$dir"
chmod 700 "$dir"
for k in host_key user_key bad_key; do
  [ -f "$dir/$k" ] || ssh-keygen -q -t ed25519 -N '' -C "lua-exec-spec-$k" -f "$dir/$k"
done
cp "$dir/user_key.pub" "$dir/authorized_keys"
id -un >"$dir/user"
if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi

for try in 1 2 3 4 5 6 7 8 9 10; do
  port=$(( 20000 + ($$ * 7 + try * 1009) % 40000 ))
  cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxSessions 200
MaxStartups 200:30:400
LogLevel INFO
CONF
  : >"$dir/sshd.log"
  # sshd binds before it daemonizes: a taken port fails here, not later.
  if "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"; then
    echo "$port" >"$dir/port"
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
    : >"$dir/empty_known_hosts"
    # Wait until it answers.
    for i in $(seq 50); do
      ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile="$dir/known_hosts" -o LogLevel=ERROR \
        -i "$dir/user_key" -o IdentitiesOnly=yes -p "$port" -l "$(cat "$dir/user")" 127.0.0.1 true \
        </dev/null 2>/dev/null && exit 0
      sleep 0.1
    done
    echo "sshd started on port $port but does not let us in; its log:" >&2
    cat "$dir/sshd.log" >&2
    exit 1
  fi
done
echo "could not start sshd; its log:" >&2
cat "$dir/sshd.log" >&2
exit 1
