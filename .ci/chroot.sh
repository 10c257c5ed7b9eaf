# Functions for CI's pristine Debian roots: build one with debootstrap, run a
# command inside it. Sourced by .ci/run and the phase scripts.
#
#   ci_debootstrap SUITE DIR [EXTRA_PACKAGES]   minbase root from the host's Debian mirror
#   ci_in_root DIR COMMAND...                   run COMMAND as root inside DIR (bash -c)
#
# Every mount (proc, sys, dev, dev/pts, a tmpfs on dev/shm) is made in a private
# mount namespace, so nothing leaks to the host, and is unmounted when the
# command ends, whatever its status; processes the command left running inside
# the root are killed first (by pid: those whose root directory is DIR).

# The mirror this machine's apt uses (deb822 or one-line sources), else Debian's CDN.
ci_mirror() {
  local url
  url=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        grep -oE 'https?://[^ ]+' | head -n1)
  echo "${url:-http://deb.debian.org/debian}"
}

ci_debootstrap() {
  local suite=$1 dir=$2 include=${3:-} script=
  # debootstrap of Debian 12 has no script for suites named after it ("forky"):
  # those are built like sid.
  [ -e "/usr/share/debootstrap/scripts/$suite" ] || script=/usr/share/debootstrap/scripts/sid
  debootstrap --variant=minbase ${include:+--include="$include"} "$suite" "$dir" "$(ci_mirror)" $script
  # A chroot has no init: daemons that packages start from their maintainer
  # scripts (etcd, pgbouncer, ...) would otherwise run loose on the host's network.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # Certificate authorities this machine's network needs (a TLS-inspecting
  # egress, for one): trusted in the root once its own ca-certificates is installed.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$dir/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
  fi
  [ -e "$dir/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
}

# Kills, by pid, every process whose root directory is DIR (left behind by a command run there).
ci_kill_root_processes() {
  local dir pid root left
  dir=$(readlink -f "$1")
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    left=()
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
      root=$(readlink "/proc/$pid/root" 2>/dev/null) || continue
      [ "$root" = "$dir" ] && left+=("$pid")
    done
    [ ${#left[@]} -eq 0 ] && return 0
    kill -KILL "${left[@]}" 2>/dev/null
    sleep 0.5
  done
  echo "processes still running in $dir: ${left[*]}" >&2
  return 1
}

ci_in_root() {
  local dir=$1; shift
  local env_args=(HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
                  DEBIAN_FRONTEND=noninteractive TERM=dumb)
  local var
  # The machine's own settings worth keeping: CI markers, ports, and where its
  # TLS trust store is (node has a CA list of its own: NODE_EXTRA_CA_CERTS).
  for var in CI SL_PGPORT SL_WERROR SL_CHAOS_SECONDS NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR \
             REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
    [ -n "${!var:-}" ] && env_args+=("$var=${!var}")
  done
  local rc=0
  export -f ci_kill_root_processes
  unshare --mount --propagation private -- bash -c '
    set -e
    dir=$1; shift
    # The root a mount point of its own (in this private namespace), as on a machine:
    # inside it `unshare -m` can then make "/" private (run.sh silent_dns).
    mount --bind "$dir" "$dir"
    mount -t proc proc "$dir/proc"
    mount -t sysfs sys "$dir/sys"
    mount --bind /dev "$dir/dev"
    mount --bind /dev/pts "$dir/dev/pts"
    mount -t tmpfs -o mode=1777,size=512m shm "$dir/dev/shm"
    set +e
    chroot "$dir" /usr/bin/env -i "$@"
    rc=$?
    ci_kill_root_processes "$dir" || rc=1
    for m in dev/shm dev/pts dev sys proc; do umount -l "$dir/$m" || rc=1; done
    umount -l "$dir" || rc=1
    exit $rc' ci_in_root "$dir" "${env_args[@]}" /bin/bash -c "$*" || rc=$?
  return $rc
}
