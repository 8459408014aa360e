#!/usr/bin/env bash
# Prepares Docker for the sandbay Docker suites, idempotently:
#   1. installs docker.io, busybox-static and docker-registry when missing;
#   2. makes sure dockerd runs, listening on the unix socket AND on
#      tcp://127.0.0.1:2375 (the remote-mode tests reach the same daemon
#      over TCP). Loopback only and without TLS: fine on a throwaway CI or
#      dev machine, never on a shared host;
#   3. builds the test image sandbay/busybox:test (`cargo xtask docker-image`).
# Safe to run again: every step checks first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SOCK=/var/run/docker.sock
TCP_PORT=2375
LOG=/var/log/sandbay-dockerd.log

say() { echo "docker-setup: $*"; }

# --- 1. packages -------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. the daemon -----------------------------------------------------------
unix_ok() { docker -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
tcp_ok() { docker -H "tcp://127.0.0.1:$TCP_PORT" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if unix_ok && ! tcp_ok; then
  # A daemon started some other way, without the TCP listener: restart it ours.
  say "restarting dockerd with a loopback TCP listener"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
    systemctl stop docker docker.socket 2>/dev/null || true
  fi
  pid="$(cat /var/run/docker.pid 2>/dev/null || pgrep -xo dockerd || true)"
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
fi

if ! unix_ok || ! tcp_ok; then
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    say "starting dockerd (log: $LOG)"
    nohup dockerd -H "unix://$SOCK" -H "tcp://127.0.0.1:$TCP_PORT" >"$LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 150); do
    if unix_ok && tcp_ok; then break; fi
    sleep 0.2
  done
  if ! unix_ok || ! tcp_ok; then
    say "dockerd did not come up on both listeners; last log lines:"
    tail -n 30 "$LOG" 2>/dev/null || true
    exit 1
  fi
fi
say "dockerd $(docker version --format '{{.Server.Version}}') on unix://$SOCK and tcp://127.0.0.1:$TCP_PORT"

# --- 3. the test image -------------------------------------------------------
if ! cargo xtask docker-image; then
  say "cargo xtask docker-image failed"
  exit 1
fi
