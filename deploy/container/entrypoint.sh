#!/bin/sh
# Starts logwarden with V8 heap limits derived from the container's memory limit.
#
# Node sizes its old generation from the host's memory, not from the cgroup limit, so a
# container with a 512Mi limit on a 64 GiB node can grow its heap until the kernel OOM-kills
# it instead of collecting garbage. Here the old generation gets LOGWARDEN_HEAP_PERCENT of the
# limit (default 70) minus the young generation, leaving room for buffers, sockets and the
# runtime outside the V8 heap. The semi-space (young generation) is raised from V8's 16 MiB
# default to cut scavenges on a hot decode path, but only as far as the limit allows.
#
# Overrides: NODE_OPTIONS containing --max-old-space-size or --max-semi-space-size wins;
# LOGWARDEN_HEAP_PERCENT, LOGWARDEN_SEMI_SPACE_MB tune the derivation;
# LOGWARDEN_CGROUP_ROOT (default /sys/fs/cgroup) is where the limit is read;
# LOGWARDEN_ENTRYPOINT_PRINT=1 prints the node command line instead of running it.
set -eu

cgroup_root=${LOGWARDEN_CGROUP_ROOT:-/sys/fs/cgroup}
heap_percent=${LOGWARDEN_HEAP_PERCENT:-70}
app_dir=${LOGWARDEN_HOME:-/opt/logwarden}

limit=
if [ -r "$cgroup_root/memory.max" ]; then
  # cgroup v2: a byte count, or "max" when unlimited
  limit=$(cat "$cgroup_root/memory.max")
elif [ -r "$cgroup_root/memory/memory.limit_in_bytes" ]; then
  # cgroup v1: unlimited reads as a huge page-aligned number (9223372036854771712)
  limit=$(cat "$cgroup_root/memory/memory.limit_in_bytes")
fi

limit_mb=
case "$limit" in
  '' | max | *[!0-9]*) ;;
  *)
    # 1 TiB or more means "no limit" (cgroup v1's sentinel value)
    if [ "${#limit}" -le 13 ]; then
      limit_mb=$((limit / 1048576))
      if [ "$limit_mb" -ge 1048576 ]; then limit_mb=; fi
    fi
    ;;
esac

semi_mb=${LOGWARDEN_SEMI_SPACE_MB:-}
if [ -z "$semi_mb" ]; then
  if [ -z "$limit_mb" ] || [ "$limit_mb" -ge 1024 ]; then
    semi_mb=64
  elif [ "$limit_mb" -ge 512 ]; then
    semi_mb=32
  else
    semi_mb=16
  fi
fi

flags=
case "${NODE_OPTIONS:-}" in
  *--max-semi-space-size*) ;;
  *) flags="--max-semi-space-size=$semi_mb" ;;
esac

case "${NODE_OPTIONS:-}" in
  *--max-old-space-size*) ;;
  *)
    if [ -n "$limit_mb" ]; then
      # V8's young generation is three semi-spaces (two halves plus the new large-object space).
      old_mb=$((limit_mb * heap_percent / 100 - 3 * semi_mb))
      if [ "$old_mb" -lt 64 ]; then old_mb=64; fi
      flags="$flags --max-old-space-size=$old_mb"
    fi
    ;;
esac

if [ "${LOGWARDEN_ENTRYPOINT_PRINT:-}" = 1 ]; then
  # shellcheck disable=SC2086
  echo node $flags "$app_dir/bin/logwarden.js" "$@"
  exit 0
fi

# shellcheck disable=SC2086
exec node $flags "$app_dir/bin/logwarden.js" "$@"
