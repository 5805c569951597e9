#!/usr/bin/env bash
# Cluster benchmarks (issue 3), run by hand, never in CI:
#  1. cross-node delivery: publishers on node A, subscriber on node B,
#     against the same load with the subscriber on A, in one run, rounds
#     alternating; reports the throughput ratio and the latency the hop adds;
#  2. replicated writes: users and ACL rules through the REST bulk path
#     (one request of N records = one raft entry) on a 3-node cluster, sent
#     to a follower (forwarded to the leader) and to the leader.
# Usage: bench/cluster.sh [--rounds N] [--count N] [--bulk N]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 count=10000 bulk=5000 batches=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --bulk) bulk=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d /tmp/roost-cbench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

go build -o "$tmp/roost" ./cmd/roost
go build -o "$tmp/loadgen" ./bench/loadgen

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
declare -A MQTT CL
for i in 1 2 3; do
  MQTT[$i]=127.0.0.1:$(port); CL[$i]=127.0.0.1:$(port)
  mkdir -p "$tmp/n$i"
  ROOST_NODE__NAME=n$i ROOST_NODE__COOKIE=bench-cookie-0123456789 ROOST_NODE__DATA_DIR="$tmp/n$i/data" \
  ROOST_LISTENERS__TCP__DEFAULT__BIND=${MQTT[$i]} ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:$(port) \
  ROOST_API__BIND=127.0.0.1:$(port) ROOST_CLUSTER__BIND=${CL[$i]} ROOST_AUTHN__ENABLE=false ROOST_LOG__LEVEL=warn \
    "$tmp/roost" start >"$tmp/n$i/log" 2>&1 &
  pids+=($!)
done
ctl() { local i=$1; shift; ROOST_NODE__DATA_DIR="$tmp/n$i/data" "$tmp/roost" ctl "$@"; }
for i in 1 2 3; do for _ in $(seq 100); do ctl $i status >/dev/null 2>&1 && break; sleep 0.1; done; done
ctl 2 cluster join "${CL[1]}" >/dev/null
ctl 3 cluster join "${CL[1]}" >/dev/null
sleep 2
ctl 1 cluster status

results="$tmp/results.jsonl"
for r in $(seq "$rounds"); do
  for qos in 0 1; do
    for mode in same cross; do
      sub=${MQTT[1]}; [ "$mode" = cross ] && sub=${MQTT[2]}
      "$tmp/loadgen" -addr "${MQTT[1]}" -sub-addr "$sub" -scenario fanin -qos $qos -count "$count" \
        -label "$mode-q$qos" 2>/dev/null >>"$results" || echo "round $r $mode q$qos failed" >&2
    done
  done
done

python3 - "$results" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(label, key, sub=None):
    v = [(r[key][sub] if sub else r[key]) for r in rows if r["label"] == label]
    return st.median(v) if v else float("nan")
print("\n### Cross-node delivery (publishers on A, subscriber on B vs on A), medians of rounds\n")
print("| QoS | same-node msg/s | cross-node msg/s | ratio | same p50/p99 ms | cross p50/p99 ms | added p50/p99 ms | lost |")
print("|---|---|---|---|---|---|---|---|")
for q in (0, 1):
    s, c = f"same-q{q}", f"cross-q{q}"
    lost = sum(r["lost"] for r in rows if r["label"] in (s, c))
    print(f"| {q} | {med(s,'msgs_per_sec'):,.0f} | {med(c,'msgs_per_sec'):,.0f} | {med(c,'msgs_per_sec')/med(s,'msgs_per_sec'):.2f}x | "
          f"{med(s,'latency','p50_ms'):.1f} / {med(s,'latency','p99_ms'):.1f} | {med(c,'latency','p50_ms'):.1f} / {med(c,'latency','p99_ms'):.1f} | "
          f"{med(c,'latency','p50_ms')-med(s,'latency','p50_ms'):+.1f} / {med(c,'latency','p99_ms')-med(s,'latency','p99_ms'):+.1f} | {lost} |")
PY

# Replicated writes through the bulk REST path, over each node's socket.
leader=$(ctl 1 --output json cluster status | python3 -c 'import json,sys; print([m["name"] for m in json.load(sys.stdin)["nodes"] if m["role"]=="leader"][0])')
follower=1; [ "$leader" = n1 ] && follower=2
lnum=${leader#n}
gen_users() { python3 -c "import json,sys; print(json.dumps([{'user_id': f'$1-{i}', 'password': 'pw'} for i in range($bulk)]))"; }
gen_acl() { python3 -c "import json; print(json.dumps([{'kind':'username','value':f'$1-{i}','topic':f't/{i}/#','action':'all','permission':'allow'} for i in range($bulk)]))"; }
bulk_run() { # node kind
  local node=$1 kind=$2 start end total=0
  for b in $(seq "$batches"); do
    if [ "$kind" = users ]; then gen_users "$node-$b" >"$tmp/body.$b"; else gen_acl "$node-$b" >"$tmp/body.$b"; fi
  done
  start=$(date +%s.%N)
  for b in $(seq "$batches"); do
    curl -sf --unix-socket "$tmp/n$node/data/roost.sock" -H 'Content-Type: application/json' \
      -d @"$tmp/body.$b" "http://local/api/v1/$kind/bulk" >/dev/null
    total=$((total + bulk))
  done
  end=$(date +%s.%N)
  python3 -c "print(f'| $kind | n$node ($3) | $total | {($end-$start):.2f} | {$total/($end-$start):,.0f} |')"
}
echo
echo "### Replicated writes, REST bulk path ($batches requests of $bulk records), 3-node cluster"
echo
echo "| records | sent to | count | seconds | records/s |"
echo "|---|---|---|---|---|"
bulk_run "$lnum" users leader
bulk_run "$follower" users follower
bulk_run "$lnum" acl leader
bulk_run "$follower" acl follower
echo
for i in 1 2 3; do echo "n$i digest: $(ctl $i --output json data digest | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["index"], [(t["table"], t["count"]) for t in d["tables"][:2]])')"; done
