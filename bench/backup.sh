#!/usr/bin/env bash
# Node backup benchmark (issue 5, "Performance"), run by hand, never in CI.
# One node holding N users and N/2 retained messages of 1 KiB (about 1 GiB
# of data dir at N = 1,000,000):
#   1. hot backup: `roost ctl backup create` on the running node (page cache
#      warm), best of 2;
#   2. the copy-speed floor: `tar -cf - DATA_DIR | zstd -q` (zstd's default
#      level 3) of the same data dir with the node stopped, best of 2;
#   3. etcd (Debian's etcd-server) holding the same number of keys and
#      bytes: `etcdctl snapshot save`, best of 2;
#   4. publish latency: loadgen fan-in QoS 1 at a fixed rate, alone and with
#      a backup started 1 s into it, two pairs alternating: p50/p99 of each;
#      meanwhile bench/writeprobe.py times replicated writes (an ACL rule
#      through the REST API every 20 ms): the store's write pauses;
#   5. restore: `roost restore` of the backup into the stopped node's data
#      dir, and the node's start afterwards.
# Prints a markdown table and writes it to bench/results/backup-<date>.md.
# Usage: bench/backup.sh [--users N] [--rate MSG_PER_S] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."

users=1000000 rate=2000 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
retained=$((users / 2))
out="bench/results/backup-$(date +%F).md"
[ "$users" != 1000000 ] && out="bench/results/backup-$(date +%F)-$users.md"
for t in zstd etcd etcdctl; do
  command -v $t >/dev/null || { echo "needs $t: apt-get install zstd etcd-server etcd-client" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/roost-bbench.XXXX)
node_pid= etcd_pid=
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM

echo "building roost, gendata, loadgen..." >&2
go build -o "$tmp/roost" ./cmd/roost
go build -o "$tmp/gendata" ./bench/gendata
go build -o "$tmp/loadgen" ./bench/loadgen

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
data="$tmp/node/data"
mqtt=127.0.0.1:$(port)
export ROOST_NODE__NAME=bench ROOST_NODE__DATA_DIR="$data" ROOST_LISTENERS__TCP__DEFAULT__BIND=$mqtt \
  ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:$(port) ROOST_API__BIND=127.0.0.1:$(port) \
  ROOST_CLUSTER__BIND=127.0.0.1:$(port) ROOST_AUTHN__ENABLE=false ROOST_LOG__LEVEL=warn
ctl() { "$tmp/roost" ctl --timeout 30m "$@"; }
start_node() {
  "$tmp/roost" start >>"$tmp/node.log" 2>&1 & node_pid=$!
  for _ in $(seq 300); do ctl status >/dev/null 2>&1 && return; sleep 0.1; done
  echo "node did not start" >&2; tail "$tmp/node.log" >&2; exit 1
}
stop_node() { kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; node_pid=; }

echo "== data: $users users, $retained retained messages of 1 KiB" >&2
"$tmp/gendata" -o "$tmp/gen.json" -users "$users" -acl 0 -retained "$retained" -payload 1024
mkdir -p "$data/backup"
start_node
mv "$tmp/gen.json" "$data/backup/gen.json"
ctl data import gen.json >/dev/null
rm -f "$data/backup/gen.json"
sleep 5
stop_node
start_node # a settled node: raft snapshot taken, log trimmed on restart
datadir_bytes=$(du -sb --exclude=backup "$data" | cut -f1)
echo "   data dir $(du -sh --exclude=backup "$data" | cut -f1)" >&2
sleep 10
rss_mib=$(( $(awk '/^RssAnon/ {print $2}' /proc/$node_pid/status) / 1024 ))

echo "== hot backup (node serving)" >&2
cat "$data/store.db" "$data/raft/raft.db" >/dev/null # warm the page cache for every contender alike
bt=()
for i in 1 2; do
  rm -f "$data/backup/"*.tar.zst
  t0=$(now); ctl -o json backup create --name "b$i.tar.zst" >"$tmp/create.json"; t1=$(now)
  bt+=("$(secs "$t0" "$t1")")
done
backup_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["size"])' "$tmp/create.json")
view_ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["view_ms"])' "$tmp/create.json")
cp "$data/backup/b2.tar.zst" "$tmp/backup.tar.zst"

echo "== publish latency without and with a backup" >&2
lg() { "$tmp/loadgen" -addr "$mqtt" -scenario fanin -qos 1 -pubs 4 -subs 1 -count 10000000 -rate "$rate" -duration "$1" -label "$2" 2>/dev/null; }
best_bt=$(best "${bt[@]}")
dur=$(python3 -c "import math; print(max(10, math.ceil(${best_bt}) + 4))")s
rm -f "$data/backup/"b*.tar.zst
probe() { python3 bench/writeprobe.py "$data/roost.sock" "${dur%s}" 0.02 "$1" >"$tmp/w-$1.json"; }
for i in 1 2; do # two pairs, alternating: the machine's noise shows in both
  probe "alone-$i" & ppid=$!
  lg "$dur" alone >"$tmp/lat-alone-$i.json"
  wait $ppid
  probe "during-$i" & ppid=$!
  ( sleep 1; ctl -o json backup create --name "during-$i.tar.zst" >"$tmp/during.json" ) & bpid=$!
  lg "$dur" during >"$tmp/lat-during-$i.json"
  wait $bpid $ppid
done
# Deleted only now: on a filesystem mounted with discard, deleting 550 MB
# stalls other fsyncs, which the next run would measure.
rm -f "$data/backup/"during-*.tar.zst
pct() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(d["latency"][sys.argv[2]])' "$1" "$2"; }
lat_row() { echo "| $1 | $(pct "$2" p50_ms) | $(pct "$2" p99_ms) | $(pct "$2" max_ms) |"; }
w_row() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("| %s | %d | %s | %s | %s |" % (sys.argv[2], d["writes"], d["p50_ms"], d["p99_ms"], d["max_ms"]))' "$tmp/w-$1.json" "$2"; }

echo "== tar | zstd of the stopped data dir" >&2
stop_node
tt=()
for i in 1 2; do
  t0=$(now); tar -cf - -C "$data" --exclude=./backup . | zstd -q -c >"$tmp/floor.tar.zst"; t1=$(now)
  tt+=("$(secs "$t0" "$t1")")
done
floor_bytes=$(stat -c %s "$tmp/floor.tar.zst"); rm -f "$tmp/floor.tar.zst"

echo "== restore" >&2
t0=$(now); "$tmp/roost" restore "$tmp/backup.tar.zst" --data-dir "$data" >/dev/null; t1=$(now)
restore_s=$(secs "$t0" "$t1")
rm -rf "$data".pre-restore-*
t0=$(now); start_node; t1=$(now)
restart_s=$(secs "$t0" "$t1")
restored_users=$(ctl -o json data digest | python3 -c 'import json,sys; print(next(t["count"] for t in json.load(sys.stdin)["tables"] if t["table"]=="users"))')
stop_node

echo "== etcd with the same keys and bytes" >&2
user_val=$(( $(stat -c %s "$data/store.db") / (users + retained * 5) )) # rough split: a retained record is ~5x a user's
ecli=127.0.0.1:$(port) epeer=127.0.0.1:$(port)
etcd --data-dir "$tmp/etcd" --listen-client-urls "http://$ecli" --advertise-client-urls "http://$ecli" \
  --listen-peer-urls "http://$epeer" --initial-advertise-peer-urls "http://$epeer" --initial-cluster "default=http://$epeer" \
  --quota-backend-bytes $((8 << 30)) --max-txn-ops 20000 --max-request-bytes $((64 << 20)) \
  --log-level error >"$tmp/etcd.log" 2>&1 & etcd_pid=$!
export ETCDCTL_API=3
for _ in $(seq 100); do etcdctl --endpoints "$ecli" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
# Same count and sizes as the store's records: users of their JSON size,
# retained messages of theirs (measured from the export of the same data).
python3 - "$users" "$retained" "$tmp/txn" <<'PY'
import os, sys, base64
users, retained, base = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
uval = base64.b64encode(os.urandom(190)).decode()        # ~ a user record (salted sha256, times): 256 B
rval = base64.b64encode(os.urandom(1050)).decode()       # ~ a retained record (1 KiB payload, base64, props): 1400 B
# etcdctl sends at most 2 MiB per request: about 1.5 MB per txn.
n, f, size = 0, None, 0
def put(line):
    global f, n, size
    if f is None or size + len(line) > 1_500_000:
        if f: f.write("\n\n\n"); f.close()
        f = open(f"{base}.{n:05d}", "w"); n += 1; size = 0
        f.write("\n")   # empty compare section
    f.write(line); size += len(line)
for i in range(users):
    put(f'put users/username:user-{i:07d} "{uval[:(i % 7) + 250]}"\n')
for i in range(retained):
    put(f'put retained/bench/retained/{i:07d} "{rval[:(i % 7) + 1394]}"\n')
f.write("\n\n\n"); f.close()
PY
for t in "$tmp"/txn.*; do etcdctl --endpoints "$ecli" txn <"$t" >/dev/null; rm "$t"; done
ekeys=$(etcdctl --endpoints "$ecli" get --prefix "" --limit 1 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
et=()
for i in 1 2; do
  rm -f "$tmp/etcd.snap"
  t0=$(now); etcdctl --endpoints "$ecli" snapshot save "$tmp/etcd.snap" >/dev/null; t1=$(now)
  et+=("$(secs "$t0" "$t1")")
done
etcd_bytes=$(stat -c %s "$tmp/etcd.snap")
kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; etcd_pid=

best_tt=$(best "${tt[@]}") best_et=$(best "${et[@]}")
ratio() { python3 -c "print(f'{$1/$2:.2f}x')"; }
report=$(cat <<EOF
# Node backup benchmark, $(date -u '+%F %H:%M') UTC

\`bench/backup.sh --users $users --rate $rate\` on $(nproc) cores ($(uname -m)), $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty): one node, $users users and $retained retained messages of 1 KiB; data dir $((datadir_bytes / 1048576)) MiB (store.db, raft/, sessions.db; backup/ excluded). Each time is the best of 2 runs, page cache warm.

| what | seconds | output MiB | vs tar \| zstd | vs etcdctl snapshot save |
|---|---|---|---|---|
| \`roost ctl backup create\` (hot, node serving) | $best_bt (runs: ${bt[*]}) | $((backup_bytes / 1048576)) | $(ratio "$best_bt" "$best_tt") | $(ratio "$best_bt" "$best_et") |
| \`tar -cf - DATA_DIR \| zstd -q\` (node stopped) | $best_tt (runs: ${tt[*]}) | $((floor_bytes / 1048576)) | 1.00x | |
| \`etcdctl snapshot save\` (etcd $(etcd --version | awk '/etcd Version/ {print $3}'), $ekeys keys, same sizes) | $best_et (runs: ${et[*]}) | $((etcd_bytes / 1048576)) (uncompressed) | | 1.00x |
| \`roost restore\` (verify, extract, raft state, swap) | $restore_s | | | |
| node start after the restore | $restart_s | | | |

The serving node's RssAnon, 10 s after its start, was $rss_mib MiB. The store's read view was open $view_ms ms of the last backup (writers are not blocked by it). After the restore the node held $restored_users users.

Publish latency, loadgen fan-in QoS 1, 4 publishers at $rate msg/s in total, $dur:

| run | p50 ms | p99 ms | max ms |
|---|---|---|---|
$(lat_row "alone (1)" "$tmp/lat-alone-1.json")
$(lat_row "with a backup started 1 s in (1)" "$tmp/lat-during-1.json")
$(lat_row "alone (2)" "$tmp/lat-alone-2.json")
$(lat_row "with a backup started 1 s in (2)" "$tmp/lat-during-2.json")

Replicated writes meanwhile (one ACL rule added through the REST API every 20 ms, each a raft commit):

| run | writes | p50 ms | p99 ms | max ms |
|---|---|---|---|---|
$(w_row alone-1 "alone (1)")
$(w_row during-1 "with a backup (1)")
$(w_row alone-2 "alone (2)")
$(w_row during-2 "with a backup (2)")

p99 ratio during/alone: pair 1 $(ratio "$(pct "$tmp/lat-during-1.json" p99_ms)" "$(pct "$tmp/lat-alone-1.json" p99_ms)"), pair 2 $(ratio "$(pct "$tmp/lat-during-2.json" p99_ms)" "$(pct "$tmp/lat-alone-2.json" p99_ms)"); both pairs pooled (mean p99 during / mean p99 alone) $(ratio "($(pct "$tmp/lat-during-1.json" p99_ms) + $(pct "$tmp/lat-during-2.json" p99_ms))" "($(pct "$tmp/lat-alone-1.json" p99_ms) + $(pct "$tmp/lat-alone-2.json" p99_ms))")
EOF
)
mkdir -p bench/results
echo "$report" | tee "$out"
echo "wrote $out" >&2
