#!/usr/bin/env bash
# Retained delivery on subscribe, this tree against a baseline revision, in
# one run (run by hand, never in CI). For each round and each build: a
# fresh node, N retained messages of SIZE bytes published with loadgen
# (QoS 1), then one fresh subscriber to bench/retained/# (QoS 1): seconds
# from SUBSCRIBE to the last retained message, how many arrived, the
# broker's CPU seconds for the whole run, and the node's RssAnon after it.
# Usage: bench/retained_fetch.sh [--baseline REV] [--count N] [--size BYTES] [--rounds R]
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=af1c6c4 count=100000 size=1024 rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) baseline=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
tmp=$(mktemp -d /tmp/roost-fbench.XXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true
  git worktree remove --force "$tmp/base-src" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
echo "building this tree and $baseline..." >&2
go build -o "$tmp/roost-new" ./cmd/roost
go build -o "$tmp/loadgen" ./bench/loadgen
git worktree add --quiet --detach "$tmp/base-src" "$baseline"
(cd "$tmp/base-src" && go build -o "$tmp/roost-base" ./cmd/roost)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
mqtt=127.0.0.1:$(port)
export ROOST_NODE__DATA_DIR=$tmp/data ROOST_LISTENERS__TCP__DEFAULT__BIND=$mqtt \
  ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:$(port) ROOST_API__BIND=127.0.0.1:$(port) \
  ROOST_CLUSTER__BIND=127.0.0.1:$(port) ROOST_AUTHN__ENABLE=false ROOST_LOG__LEVEL=warn
echo "| round | build | retained received | SUBSCRIBE → last (s) | broker CPU s | RssAnon after (MiB) |"
echo "|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  for b in base new; do
    rm -rf "$tmp/data"
    "$tmp/roost-$b" start >"$tmp/log-$b" 2>&1 & pid=$!
    for _ in $(seq 100); do "$tmp/roost-$b" ctl status >/dev/null 2>&1 && break; sleep 0.1; done
    out=$("$tmp/loadgen" -addr "$mqtt" -scenario retained -qos 1 -count "$count" -size "$size" \
      -verify-retained wildcard -clean-retained=false -broker-pid "$pid" -label "$b" 2>/dev/null | tail -1)
    anon=$(( $(awk '/^RssAnon/ {print $2}' /proc/$pid/status) / 1024 ))
    cpu=$(awk '{printf "%.1f", ($14+$15)/100}' /proc/$pid/stat)
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("| %s | %s | %d of %d | %.2f | %s | %s |" % (sys.argv[2], sys.argv[3], d.get("retained_wildcard",0), d.get("retained_expected",0), d.get("retained_fetch_s",0), sys.argv[4], sys.argv[5]))' "$out" "$r" "$b" "$cpu" "$anon"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done
