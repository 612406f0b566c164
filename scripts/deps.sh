#!/bin/sh
# Install the Debian packages lua-exec needs, if any are missing.
# Runs apt-get only when something is missing; needs root for that.
set -eu
# lua-luv, lua-cqueues and lua-copas: the event loops spec/hostloops_spec.lua
# runs lua-exec inside (luv is also what make bench compares against); zip and
# unzip for the source rock (make dist, and luarocks installing it).
# podman, runc, catatonit and busybox-static: the container specs' private
# engine and test image (scripts/podman.sh; runc, because crun fails on
# hosts with cgroups in hybrid mode).
need="lua5.4 liblua5.4-dev luajit libluajit-5.1-dev luarocks lua-busted lua5.3 lua5.1 openssh-client openssh-server lua-luv lua-cqueues lua-copas zip unzip podman runc catatonit busybox-static"
missing=""
for p in $need; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q $missing >/dev/null
