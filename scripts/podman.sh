#!/bin/sh
# A private podman for the container specs: its storage, run state,
# temporary files and configuration all live in DIR, so the machine's own
# containers and images (if any) are never seen nor touched.
#
#   scripts/podman.sh start DIR   write DIR/containers.conf, import the test
#                                 image localhost/lua-exec-test:1 (busybox-static
#                                 as a rootfs tarball: no registry is needed)
#                                 and write DIR/args (the global arguments, one
#                                 per line) and DIR/image
#   scripts/podman.sh ps DIR      the containers that exist there, one id a line
#   scripts/podman.sh podman DIR ARGS...   podman with DIR's arguments
#   scripts/podman.sh stop DIR    remove every container there, then DIR
#
# As measured on Debian 12: runc (crun fails with cgroups in hybrid mode),
# catatonit for --init, ulimits below the machine's hard limits, vfs storage,
# the cgroupfs manager; containers get no network unless a spec asks for one
# (netns = "none"), so nothing is set up on the host's network either, and
# nothing is written outside DIR.
set -eu
cmd=${1:?start, ps, podman or stop}
dir=${2:?directory}
image=localhost/lua-exec-test:1

p() {
  CONTAINERS_CONF="$dir/containers.conf" podman --root "$dir/store" --runroot "$dir/run" \
    --storage-driver vfs --tmpdir "$dir/tmp" "$@"
}

case $cmd in
ps) p ps -a -q --no-trunc; exit ;;
podman) shift 2; p "$@"; exit ;;
stop)
  if [ -f "$dir/containers.conf" ]; then
    p rm -a -f -t 0 >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit 0 ;;
start) ;;
*) echo "usage: $0 start|ps|podman|stop DIR" >&2; exit 2 ;;
esac

command -v podman >/dev/null || { echo "podman not found (scripts/deps.sh installs it)" >&2; exit 1; }
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "$busybox not found (install busybox-static)" >&2; exit 1; }
mkdir -p "$dir/tmp"
chmod 700 "$dir"
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
[ "$nofile" -gt 1024 ] && nofile=1024
cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=1024:1024"]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$dir/tmp"
CONF
rootfs="$dir/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc" "$rootfs/work"
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -cf "$dir/rootfs.tar" .
rm -rf "$rootfs"
# As root, podman notes what it imports in /var/lib/containers/cache, which
# no option moves: the import runs in a mount namespace of its own, where
# /var/lib is an empty tmpfs that goes with it.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  CONTAINERS_CONF="$dir/containers.conf" unshare --mount --propagation private \
    sh -c 'mount -t tmpfs lua-exec-spec /var/lib && exec "$@"' sh \
    podman --root "$dir/store" --runroot "$dir/run" --storage-driver vfs --tmpdir "$dir/tmp" \
    import --quiet --change 'ENV PATH=/bin' "$dir/rootfs.tar" "$image" >/dev/null
else
  p import --quiet --change 'ENV PATH=/bin' "$dir/rootfs.tar" "$image" >/dev/null
fi
rm -f "$dir/rootfs.tar"
# Everything needed for a run is there: one container, removed again.
out=$(p run --rm -i --init "$image" echo ok </dev/null 2>&1) || {
  echo "podman cannot run a container here:" >&2; echo "$out" >&2; exit 1; }
[ "$out" = ok ] || { echo "podman ran, but printed: $out" >&2; exit 1; }
printf '%s\n' --root "$dir/store" --runroot "$dir/run" --storage-driver vfs --tmpdir "$dir/tmp" >"$dir/args"
echo "$image" >"$dir/image"
