#!/usr/bin/env bash
# Retained-message ingestion into the replicated store on one node (issue 2:
# >= 20,000 retained messages/s sustained, thanks to batching). Publishes N
# retained messages on distinct topics with loadgen (8 publishers, QoS 1,
# windowed) and times until the store holds all N (`ctl data digest`), so
# the figure is messages stored per second, not just acknowledged.
# Usage: bench/retained.sh [N] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000} rounds=${2:-3}
tmp=$(mktemp -d /tmp/roost-rbench.XXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
go build -o "$tmp/roost" ./cmd/roost
go build -o "$tmp/loadgen" ./bench/loadgen
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
mqtt=127.0.0.1:$(port)
export ROOST_NODE__DATA_DIR=$tmp/data ROOST_LISTENERS__TCP__DEFAULT__BIND=$mqtt \
  ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:$(port) ROOST_API__BIND=127.0.0.1:$(port) \
  ROOST_CLUSTER__BIND=127.0.0.1:$(port) ROOST_AUTHN__ENABLE=false ROOST_LOG__LEVEL=warn
count() { "$tmp/roost" ctl --output json data digest | python3 -c 'import json,sys; print([t["count"] for t in json.load(sys.stdin)["tables"] if t["table"]=="retained"][0])'; }
index() { "$tmp/roost" ctl --output json data digest | python3 -c 'import json,sys; print(json.load(sys.stdin)["index"])'; }
echo "| round | retained stored | seconds | stored/s | raft entries |"
echo "|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  # A fresh node each round: the topics are the same every round.
  rm -rf "$tmp/data"
  "$tmp/roost" start >"$tmp/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do "$tmp/roost" ctl status >/dev/null 2>&1 && break; sleep 0.1; done
  idx0=$(index)
  t0=$(date +%s.%N)
  "$tmp/loadgen" -addr "$mqtt" -scenario retained -qos 1 -count "$n" -clean-retained=false -verify-retained off >/dev/null 2>&1
  while [ "$(count)" -lt "$n" ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  idx=$(index)
  python3 -c "print(f'| $r | $n | {($t1-$t0):.2f} | {$n/($t1-$t0):,.0f} | {$idx-$idx0} |')"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
