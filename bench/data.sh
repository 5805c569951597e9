#!/usr/bin/env bash
# Data export/import benchmark (issue 4, "Performance"), run by hand, never
# in CI. For each of two sizes — the issue's data set (1,000,000 users,
# 100,000 ACL rules, 100,000 retained messages of 1 KiB) and one tenth of it
# (the flatness baseline) — it:
#   1. writes a roost-export file with bench/gendata (distinct salted sha256
#      hashes, random 1 KiB payloads) and imports it, by name from node 1's
#      backup dir, into a fresh 3-node loopback cluster A (the setup);
#   2. exports on node 2 of A (`roost ctl data export`, gzip, into its
#      backup dir) and times it;
#   3. stops A, starts a fresh, empty 3-node cluster B, places the export in
#      node 1's backup dir and imports it by name, and times it; then checks
#      that every node of B has the digest of A.
# While each step runs, /proc/PID/status of every node is sampled every
# 100 ms: VmRSS (includes the file pages of bbolt's mmap'd db, page cache
# that the kernel can reclaim) and RssAnon (the process's own memory).
# Prints markdown tables and writes them to bench/results/data-<date>.md.
# Usage: bench/data.sh [--small] [--users N] [--out FILE] [--keep]
#   --small    10x smaller (100k users / 10k / 10k, baseline 10k / 1k / 1k)
#   --users N  the big size: N users, N/10 ACL rules, N/10 retained
set -euo pipefail
cd "$(dirname "$0")/.."

users=1000000 out="" keep=0 payload=1024
while [ $# -gt 0 ]; do
  case "$1" in
    --small) users=100000; shift ;;
    --users) users=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
if [ -z "$out" ]; then
  out="bench/results/data-$(date +%F).md"
  [ "$users" != 1000000 ] && out="bench/results/data-$(date +%F)-$users.md"
fi

tmp=$(mktemp -d /tmp/roost-dbench.XXXX)
pids=() sampler=
stop_nodes() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do timeout 20 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true; done
  pids=(); }
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  stop_nodes
  wait 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM

echo "building roost and gendata..." >&2
go build -o "$tmp/roost" ./cmd/roost
go build -o "$tmp/gendata" ./bench/gendata

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
ctl() { local d=$1; shift; ROOST_NODE__DATA_DIR="$d" timeout 1200 "$tmp/roost" ctl --timeout 15m "$@"; }

# start_cluster NAME: three nodes on loopback ports, 2 and 3 joined to 1.
declare -A DIR PID
start_cluster() {
  local c=$1 i cl1=
  for i in 1 2 3; do
    local d="$tmp/$c/n$i" cl=127.0.0.1:$(port)
    [ "$i" = 1 ] && cl1=$cl
    mkdir -p "$d"
    ROOST_NODE__NAME=$c$i ROOST_NODE__COOKIE=bench-cookie-0123456789 ROOST_NODE__DATA_DIR="$d/data" \
    ROOST_LISTENERS__TCP__DEFAULT__BIND=127.0.0.1:$(port) ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:$(port) \
    ROOST_API__BIND=127.0.0.1:$(port) ROOST_CLUSTER__BIND=$cl ROOST_AUTHN__ENABLE=false ROOST_LOG__LEVEL=warn \
      "$tmp/roost" start >"$d/log" 2>&1 &
    pids+=($!); PID[$i]=$!; DIR[$i]="$d/data"
  done
  for i in 1 2 3; do
    for _ in $(seq 150); do ctl "${DIR[$i]}" status >/dev/null 2>&1 && break; sleep 0.1; done
    ctl "${DIR[$i]}" status >/dev/null || { echo "node $c$i did not start:" >&2; tail "$tmp/$c/n$i/log" >&2; exit 1; }
  done
  ctl "${DIR[2]}" cluster join "$cl1" >/dev/null
  ctl "${DIR[3]}" cluster join "$cl1" >/dev/null
  sleep 2
  mkdir -p "${DIR[1]}/backup" "${DIR[2]}/backup" "${DIR[3]}/backup"
}
roles() { ctl "${DIR[1]}" --output json cluster status | python3 -c 'import json,sys; print(" ".join(m["name"]+"="+m["role"] for m in json.load(sys.stdin)["nodes"]))'; }
digest() { ctl "${DIR[$1]}" --output json data digest | python3 -c 'import json,sys; print(json.dumps([(t["table"],t["count"],t.get("sha256")) for t in json.load(sys.stdin)["tables"]]))'; }

# The RSS sampler: every 100 ms, VmRSS and RssAnon (kB) of each pid; on
# SIGTERM it writes {pid: {base_rss, base_anon, peak_rss, peak_anon}}.
cat >"$tmp/sampler.py" <<'PY'
import json, signal, sys, time
out, pids = sys.argv[1], sys.argv[2:]
st = {p: {} for p in pids}
def sample():
    for p in pids:
        try:
            f = dict(l.split(":", 1) for l in open(f"/proc/{p}/status") if ":" in l)
        except OSError:
            continue
        rss, anon = int(f["VmRSS"].split()[0]), int(f["RssAnon"].split()[0])
        s = st[p]
        if not s:
            s.update(base_rss=rss, base_anon=anon, peak_rss=rss, peak_anon=anon, n=0)
        s["peak_rss"], s["peak_anon"], s["n"] = max(s["peak_rss"], rss), max(s["peak_anon"], anon), s["n"] + 1
def stop(*_):
    sample(); json.dump(st, open(out, "w")); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    sample(); time.sleep(0.1)
PY
sample_start() { python3 "$tmp/sampler.py" "$tmp/rss-$1.json" "${PID[1]}" "${PID[2]}" "${PID[3]}" & sampler=$!; sleep 0.3; }
sample_stop() { kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=; }
# settle: wait (up to 90 s) until no node's RssAnon moves by more than 8 MB
# in 3 s: after a big import the nodes snapshot raft and collect garbage,
# which would otherwise be counted as the next step's growth.
anon() { local t=0 i; for i in 1 2 3; do t=$((t + $(awk '/^RssAnon/ {print $2}' "/proc/${PID[$i]}/status"))); done; echo $t; }
settle() { local a b n; a=$(anon)
  for n in $(seq 30); do sleep 3; b=$(anon); [ $(( (b > a ? b - a : a - b) )) -lt 8192 ] && return; a=$b; done; }

rows="$tmp/rows.jsonl"
: >"$rows"
# step NAME SIZE NODE SECONDS RECORDS JSONFILE: one line of results.
record() {
  python3 - "$@" "${PID[1]}" "${PID[2]}" "${PID[3]}" >>"$rows" <<'PY'
import json, sys
name, size, node, secs, recs, rssf, p1, p2, p3 = sys.argv[1:]
st = json.load(open(rssf))
nodes = [st.get(p, {}) for p in (p1, p2, p3)]
print(json.dumps({"step": name, "size": size, "node": int(node), "secs": float(secs), "records": int(recs), "rss": nodes}))
PY
}

run_size() { # users acl retained label
  local u=$1 a=$2 r=$3 label=$4 t0 t1 recs
  echo "== $label: $u users, $a ACL rules, $r retained of $payload bytes" >&2
  "$tmp/gendata" -o "$tmp/gen.json" -users "$u" -acl "$a" -retained "$r" -payload "$payload"
  echo "   generated $(du -h "$tmp/gen.json" | cut -f1)" >&2

  start_cluster "a$label"
  echo "   cluster A: $(roles)" >&2
  mv "$tmp/gen.json" "${DIR[1]}/backup/gen.json"
  sample_start "$label-setup"
  t0=$(date +%s.%N)
  ctl "${DIR[1]}" --output json data import gen.json >"$tmp/setup.json"
  t1=$(date +%s.%N)
  sleep 3  # the followers apply the commit
  sample_stop
  recs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$tmp/setup.json")
  record "setup-import" "$label" 1 "$(echo "$t1 - $t0" | bc)" "$recs" "$tmp/rss-$label-setup.json"
  rm -f "${DIR[1]}/backup/gen.json"
  local dA; dA=$(digest 1)
  for i in 2 3; do
    for _ in $(seq 100); do [ "$(digest $i)" = "$dA" ] && break; sleep 0.2; done
  done

  settle
  sample_start "$label-export"
  t0=$(date +%s.%N)
  ctl "${DIR[2]}" --output json data export --name exp.json.gz >"$tmp/export.json"
  t1=$(date +%s.%N)
  sample_stop
  record "export" "$label" 2 "$(echo "$t1 - $t0" | bc)" "$recs" "$tmp/rss-$label-export.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("   export:", d.get("size"), "bytes gzip")' "$tmp/export.json" >&2
  mv "${DIR[2]}/backup/exp.json.gz" "$tmp/exp.json.gz"
  stop_nodes
  rm -rf "$tmp/a$label"

  start_cluster "b$label"
  echo "   cluster B: $(roles)" >&2
  mv "$tmp/exp.json.gz" "${DIR[1]}/backup/exp.json.gz"
  settle
  sample_start "$label-import"
  t0=$(date +%s.%N)
  ctl "${DIR[1]}" --output json data import exp.json.gz >"$tmp/import.json"
  t1=$(date +%s.%N)
  sleep 3
  sample_stop
  record "import" "$label" 1 "$(echo "$t1 - $t0" | bc)" "$recs" "$tmp/rss-$label-import.json"
  # Where memory settles once the nodes have loaded the imported retained
  # messages into the broker's in-memory index (mochi's) and collected.
  settle
  echo "{\"step\":\"settled\",\"size\":\"$label\",\"anon\":[$(awk '/^RssAnon/ {print $2}' "/proc/${PID[1]}/status"),$(awk '/^RssAnon/ {print $2}' "/proc/${PID[2]}/status"),$(awk '/^RssAnon/ {print $2}' "/proc/${PID[3]}/status")]}" >>"$rows"
  local ok=yes i
  for i in 1 2 3; do
    local d=
    for _ in $(seq 100); do d=$(digest $i); [ "$d" = "$dA" ] && break; sleep 0.2; done
    [ "$d" = "$dA" ] || ok="NO (node $i differs)"
  done
  echo "   digests of B equal A's: $ok" >&2
  echo "{\"step\":\"digest\",\"size\":\"$label\",\"ok\":\"$ok\"}" >>"$rows"
  stop_nodes
  rm -rf "$tmp/b$label"
}

small=$((users / 10))
start=$(date +%s)
run_size "$small" $((small / 10)) $((small / 10)) "$small"
run_size "$users" $((users / 10)) $((users / 10)) "$users"
elapsed=$(( $(date +%s) - start ))

report=$(python3 - "$rows" "$small" "$users" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
small, big = sys.argv[2], sys.argv[3]
def mb(kb): return kb / 1024
def get(step, size): return next(r for r in rows if r.get("step") == step and r["size"] == size)
print("| size | step | node | seconds | records/s | node peak VmRSS / RssAnon MB | node growth VmRSS / RssAnon MB | other nodes' growth VmRSS / RssAnon MB |")
print("|---|---|---|---|---|---|---|---|")
for size in (small, big):
    for step in ("setup-import", "export", "import"):
        r = get(step, size)
        n = r["rss"][r["node"] - 1]
        others = [o for i, o in enumerate(r["rss"]) if i != r["node"] - 1]
        og = ", ".join(f"{mb(o['peak_rss']-o['base_rss']):.0f} / {mb(o['peak_anon']-o['base_anon']):.0f}" for o in others)
        label = {"setup-import": "import of the generated JSON (setup)", "export": "export (gzip) on a follower", "import": "import of that export into a fresh empty cluster"}[step]
        print(f"| {int(size):,} users | {label} | n{r['node']} | {r['secs']:.1f} | {r['records']/r['secs']:,.0f} | "
              f"{mb(n['peak_rss']):.0f} / {mb(n['peak_anon']):.0f} | {mb(n['peak_rss']-n['base_rss']):.0f} / {mb(n['peak_anon']-n['base_anon']):.0f} | {og} |")
print()
for size in (small, big):
    d = next(r for r in rows if r.get("step") == "digest" and r["size"] == size)
    print(f"- {int(size):,} users: every node of the new cluster has the source cluster's digest: {d['ok']}")
print()
for size in (small, big):
    st = next(r for r in rows if r.get("step") == "settled" and r["size"] == size)
    imp = get("import", size)
    growth = ", ".join(f"n{i+1} {mb(a - imp['rss'][i]['base_anon']):.0f}" for i, a in enumerate(st["anon"]))
    print(f"- {int(size):,} users: RssAnon growth once steady after the import (the node's working set with the data), MB: {growth}")
print()
print(f"Flatness ({int(big):,} vs {int(small):,} users), ratio of peak RSS of the working node:")
print()
print("| step | VmRSS ratio | RssAnon ratio | RssAnon growth ratio |")
print("|---|---|---|---|")
for step in ("export", "import"):
    a, b = get(step, small), get(step, big)
    na, nb = a["rss"][a["node"] - 1], b["rss"][b["node"] - 1]
    ga, gb = na["peak_anon"] - na["base_anon"], nb["peak_anon"] - nb["base_anon"]
    print(f"| {step} | {nb['peak_rss']/na['peak_rss']:.2f}x | {nb['peak_anon']/na['peak_anon']:.2f}x | {gb/max(ga,1):.2f}x |")
PY
)
{
  echo "# Data export/import benchmark, $(date -u +'%F %H:%M UTC')"
  echo
  echo "\`bench/data.sh $( [ "$users" != 1000000 ] && echo "--users $users")\` on $(nproc) cores ($(uname -m)), $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty'), three \`roost start\` processes on loopback; data set per size: N users (sha256), N/10 ACL rules, N/10 retained messages of $payload bytes. Total run ${elapsed}s."
  echo
  echo "$report"
  echo
  echo "VmRSS includes the pages of bbolt's mmap'd db file that the process has touched (file-backed page cache, reclaimable, shared with the page cache); RssAnon is the process's own memory (Go heap, stacks). Growth = peak during the step minus the value when the step started; sampled every 100 ms from /proc/PID/status, for the step and 3 s after (the followers apply the commit); before the export and the import the script waits until the nodes' RssAnon is steady."
} | tee /dev/stderr >"$tmp/report.md"
mkdir -p "$(dirname "$out")"
cp "$tmp/report.md" "$out"
echo "wrote $out" >&2
