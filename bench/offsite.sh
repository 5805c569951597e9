#!/usr/bin/env bash
# Off-site backup benchmark (issue 12), run by hand, never in CI.
# One node holding N users and N/2 retained messages of 1 KiB; in the same
# run, alternating, R rounds each:
#   1. `roost ctl backup create --to local`: the archive into the node's
#      backup dir (temp file, fsync, link);
#   2. `roost ctl backup create --to s3://bench/p`: the same archive
#      streamed as a multipart upload to versitygw (an S3-compatible server
#      on this machine, over loopback, storing on the same disk);
# and the node's RssAnon sampled every 20 ms while each runs (the upload
# must stay flat: one 16 MiB part in memory, not the archive).
# Prints a markdown table and writes it to bench/results/offsite-<date>.md.
# Usage: bench/offsite.sh [--users N] [--rounds R] [--keep]
# Needs versitygw (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0).
set -euo pipefail
cd "$(dirname "$0")/.."

users=200000 rounds=3 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
retained=$((users / 2))
vgw=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
[ -x "$vgw" ] || { echo "needs versitygw: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2; exit 1; }
out="bench/results/offsite-$(date +%F).md"

tmp=$(mktemp -d /tmp/roost-offsite.XXXX)
node_pid= vgw_pid=
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  [ -n "$vgw_pid" ] && kill "$vgw_pid" 2>/dev/null && wait "$vgw_pid" 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM

echo "building roost, gendata..." >&2
go build -o "$tmp/roost" ./cmd/roost
go build -o "$tmp/gendata" ./bench/gendata

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

# versitygw's posix backend: a bucket is a directory of its root.
s3port=$(port)
mkdir -p "$tmp/s3/bench"
"$vgw" --port 127.0.0.1:$s3port --access bench-key --secret bench-secret-0123 --quiet posix "$tmp/s3" >"$tmp/vgw.log" 2>&1 & vgw_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$s3port/" && break; sleep 0.1; done

data="$tmp/node/data"
mqtt=127.0.0.1:$(port)
export ROOST_NODE__NAME=bench ROOST_NODE__DATA_DIR="$data" ROOST_LISTENERS__TCP__DEFAULT__BIND=$mqtt \
  ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:$(port) ROOST_API__BIND=127.0.0.1:$(port) \
  ROOST_CLUSTER__BIND=127.0.0.1:$(port) ROOST_AUTHN__ENABLE=false ROOST_LOG__LEVEL=warn \
  ROOST_BACKUP__S3__ENDPOINT=http://127.0.0.1:$s3port ROOST_BACKUP__S3__REGION=us-east-1 ROOST_BACKUP__S3__PATH_STYLE=true \
  AWS_ACCESS_KEY_ID=bench-key AWS_SECRET_ACCESS_KEY=bench-secret-0123
ctl() { "$tmp/roost" ctl --timeout 30m "$@"; }
"$tmp/roost" start >>"$tmp/node.log" 2>&1 & node_pid=$!
for _ in $(seq 300); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done

echo "== data: $users users, $retained retained messages of 1 KiB" >&2
mkdir -p "$data/backup"
"$tmp/gendata" -o "$data/backup/gen.json" -users "$users" -acl 0 -retained "$retained" -payload 1024
ctl data import gen.json >/dev/null
rm -f "$data/backup/gen.json"
sleep 3
echo "   data dir $(du -sh --exclude=backup "$data" | cut -f1)" >&2
cat "$data/store.db" >/dev/null # the page cache warm for both alike

rss() { awk '/^RssAnon/ {print $2}' /proc/$node_pid/status; }
# run TO NAME: one backup; prints "seconds max_rss_kib"
run() {
  local max=0 r t0 t1 bpid
  t0=$(now)
  ctl -o json backup create --to "$1" --name "$2" >"$tmp/$2.json" & bpid=$!
  while kill -0 $bpid 2>/dev/null; do r=$(rss); [ "$r" -gt "$max" ] && max=$r; sleep 0.02; done
  wait $bpid
  t1=$(now)
  echo "$(secs "$t0" "$t1") $max"
}
rss0=$(rss)
lt=() st=() lr=() sr=()
for i in $(seq "$rounds"); do
  read -r s m < <(run local "l$i.tar.zst"); lt+=("$s"); lr+=("$m")
  rm -f "$data/backup/l$i.tar.zst"
  read -r s m < <(run s3://bench/p "s$i.tar.zst"); st+=("$s"); sr+=("$m")
  rm -f "$tmp/s3/bench/p/s$i.tar.zst"
done
bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["size"])' "$tmp/s1.tar.zst.json")
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxv() { printf '%s\n' "$@" | sort -g | tail -1; }
ml=$(med "${lt[@]}") ms=$(med "${st[@]}")
f2() { printf '%.2f' "$1"; }
runs() { local o=(); for v in "$@"; do o+=("$(f2 "$v")"); done; echo "${o[*]}"; }
report=$(cat <<EOF
### Off-site backup: S3 upload vs local disk ($(date +%F), $(nproc) cores)

$users users and $retained retained messages of 1 KiB; archive $((bytes / 1048576)) MiB (zstd). Each row: $rounds runs alternating, median time.

| target | median s | runs (s) | MiB/s | max RssAnon during (MiB) |
|---|---|---|---|---|
| local dir (\`--to local\`) | $(f2 "$ml") | $(runs "${lt[@]}") | $(echo "scale=1; $bytes / 1048576 / $ml" | bc) | $(( $(maxv "${lr[@]}") / 1024 )) |
| S3, versitygw on loopback (\`--to s3://…\`) | $(f2 "$ms") | $(runs "${st[@]}") | $(echo "scale=1; $bytes / 1048576 / $ms" | bc) | $(( $(maxv "${sr[@]}") / 1024 )) |

S3 / local time: **$(echo "scale=2; $ms / $ml" | bc)x**. Node RssAnon before the backups: $((rss0 / 1024)) MiB.
EOF
)
echo "$report"
mkdir -p bench/results
echo "$report" >"$out"
echo "wrote $out" >&2
