#!/usr/bin/env bash
# Compare Roost with Mosquitto 2.0 and a bare mochi-mqtt v2 server on this
# machine, in one run: same scenarios, same load generator, rounds alternating
# between brokers, medians over rounds. Run by hand, never in CI. See
# bench/README.md.
#
#   bench/compare.sh                      # 3 rounds, all scenarios, all brokers found
#   bench/compare.sh --quick              # short runs (smoke test of the setup)
#   bench/compare.sh --brokers mosquitto,mochi --rounds 5 --scenarios fanin-q1,retained
#   bench/compare.sh --roost-auth         # also Roost with a user (needs `roost ctl users add`)
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/compare.sh [options]
  --rounds N          rounds per broker and scenario; the table shows medians (default 3)
  --duration D        cap on each run's publishing phase, Go duration (default 10s)
  --scenarios LIST    comma-separated, from: fanin-q0 fanin-q1 fanout-q0 fanout-q1 pairs-q0 retained
                      (default: all)
  --brokers LIST      comma-separated, from: mosquitto mosquitto-auth mochi mochi-auth roost roost-auth roost-base
                      (default: mosquitto,mosquitto-auth,mochi,mochi-auth,roost; roost-auth with --roost-auth;
                      roost-base with --baseline-bin)
  --roost-auth        add roost-auth: Roost with authn on and a user created by `roost ctl users add`
  --roost-bin PATH    use this roost binary instead of building ./cmd/roost
  --baseline-bin PATH add roost-base: Roost from this binary (e.g. main's), run like roost, with
                      roost/roost-base ratios: a change against its baseline in the same run
  --proto 4|5         MQTT version of the load generator's clients (default 5)
  --quick             smaller message counts (about a second per run): check the setup, not a result
  --loadgen-args "…"  extra flags for every loadgen run (e.g. "-size 512")
  --out FILE          markdown result file (default bench/results/<date>.md)
  --keep              keep the temporary directory (logs, configs, data dirs)
  -h, --help          this text
EOF
}

orig_args="$*"
rounds=3
duration=10s
scenarios="fanin-q0,fanin-q1,fanout-q0,fanout-q1,pairs-q0,retained"
brokers=""
roost_auth=0
proto=5
quick=0
extra_args=""
out=""
keep=0
roost_bin=""
baseline_bin=""
while [[ $# -gt 0 ]]; do
	case "$1" in
	--rounds) rounds="$2"; shift 2 ;;
	--duration) duration="$2"; shift 2 ;;
	--scenarios) scenarios="$2"; shift 2 ;;
	--brokers) brokers="$2"; shift 2 ;;
	--roost-auth) roost_auth=1; shift ;;
	--roost-bin) roost_bin="$2"; shift 2 ;;
	--baseline-bin) baseline_bin="$2"; shift 2 ;;
	--proto) proto="$2"; shift 2 ;;
	--quick) quick=1; shift ;;
	--loadgen-args) extra_args="$2"; shift 2 ;;
	--out) out="$2"; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 64 ;;
	esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds must be a positive integer" >&2; exit 64; }
[[ "$proto" == 4 || "$proto" == 5 ]] || { echo "compare.sh: --proto must be 4 or 5" >&2; exit 64; }
if [[ -z "$brokers" ]]; then
	brokers="mosquitto,mosquitto-auth,mochi,mochi-auth,roost"
	[[ $roost_auth == 1 ]] && brokers+=",roost-auth"
fi
if [[ -n "$baseline_bin" && ",$brokers," != *",roost-base,"* ]]; then
	brokers+=",roost-base"
fi
IFS=, read -r -a broker_list <<<"$brokers"
IFS=, read -r -a scenario_list <<<"$scenarios"
for b in "${broker_list[@]}"; do
	case "$b" in mosquitto | mosquitto-auth | mochi | mochi-auth | roost | roost-auth | roost-base) ;;
	*) echo "compare.sh: unknown broker $b" >&2; exit 64 ;; esac
done
for s in "${scenario_list[@]}"; do
	case "$s" in fanin-q0 | fanin-q1 | fanout-q0 | fanout-q1 | pairs-q0 | retained) ;;
	*) echo "compare.sh: unknown scenario $s" >&2; exit 64 ;; esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bench_user=bench
bench_pass=benchpw

tmp="$(mktemp -d -t roost-bench.XXXXXX)"
# Mosquitto drops root privileges to its own user when it starts: it must be
# able to reach its config, password and ACL files.
chmod 711 "$tmp"
declare -A live=() # pids of the processes this script started and has not reaped

log() { printf '%s compare.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_pid() {
	local pid="$1" i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	unset "live[$pid]"
}

cleanup() {
	local rc=$?
	local pid
	for pid in "${!live[@]}"; do
		stop_pid "$pid"
	done
	if [[ $keep == 1 ]]; then
		log "kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
# Long-running children are started in the background and waited for, so
# these traps fire at once rather than after the child ends.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ----------------------------------------------------------------

log "building loadgen, baremochi, benchreport"
go build -o "$tmp/loadgen" ./bench/loadgen
go build -o "$tmp/baremochi" ./bench/baremochi
go build -o "$tmp/benchreport" ./bench/benchreport

have_roost=0
roost_note=""
if [[ ",$brokers," == *",roost"* ]]; then
	if [[ -n "$roost_bin" ]]; then
		if [[ -x "$roost_bin" ]]; then
			cp "$roost_bin" "$tmp/roost"
			have_roost=1
		else
			roost_note="Roost skipped: --roost-bin $roost_bin is not an executable file."
			log "$roost_note"
		fi
	elif compgen -G "cmd/roost/*.go" >/dev/null && go build -o "$tmp/roost" ./cmd/roost 2>"$tmp/roost-build.log"; then
		have_roost=1
	else
		roost_note="Roost skipped: \`go build ./cmd/roost\` failed or cmd/roost has no Go files yet (see the build log with --keep)."
		log "$roost_note"
		tail -n 5 "$tmp/roost-build.log" >&2 2>/dev/null || true
	fi
fi

have_base=0
if [[ ",$brokers," == *",roost-base,"* ]]; then
	if [[ -n "$baseline_bin" && -x "$baseline_bin" ]]; then
		cp "$baseline_bin" "$tmp/roost-base"
		have_base=1
	else
		log "roost-base skipped: --baseline-bin ${baseline_bin:-(not given)} is not an executable file"
	fi
fi

mosquitto_bin=/usr/sbin/mosquitto
apt_install() {
	local i
	for i in $(seq 1 60); do
		if DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >"$tmp/apt.log" 2>&1; then
			return 0
		fi
		if grep -q "Could not get lock\|dpkg was interrupted\|Unable to acquire" "$tmp/apt.log"; then
			log "dpkg is locked by another process, waiting ($i/60)"
			sleep 5
			continue
		fi
		if grep -q "Unable to locate package" "$tmp/apt.log" && [[ $i == 1 ]]; then
			apt-get update >"$tmp/apt-update.log" 2>&1 || true
			continue
		fi
		cat "$tmp/apt.log" >&2
		return 1
	done
	return 1
}
if [[ ",$brokers," == *",mosquitto"* ]] && { [[ ! -x $mosquitto_bin ]] || ! command -v mosquitto_passwd >/dev/null; }; then
	log "installing mosquitto (Debian package)"
	apt_install mosquitto mosquitto-clients || { log "could not install mosquitto"; exit 1; }
fi
mosquitto_version=""
if [[ -x $mosquitto_bin ]]; then
	mosquitto_version="$($mosquitto_bin -h 2>/dev/null | head -n 1 || true)"
fi

# ---- ports and readiness -------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
used_ports=" "
# free_port: sets REPLY to a loopback port nobody listens on and that this
# script has not handed out before (no subshell: used_ports must persist).
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 30000))
		[[ "$used_ports" == *" $p "* ]] && continue
		if ! port_in_use "$p"; then
			used_ports+="$p "
			REPLY="$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

# wait_port PID PORT SECONDS LOGFILE: wait until PORT accepts, while PID lives.
wait_port() {
	local pid="$1" port="$2" secs="$3" logf="$4" i
	for i in $(seq 1 $((secs * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "process $pid exited before listening on $port; last log lines:"
			tail -n 20 "$logf" >&2 || true
			return 1
		fi
		port_in_use "$port" && return 0
		sleep 0.1
	done
	log "nothing listening on $port after ${secs}s; last log lines:"
	tail -n 20 "$logf" >&2 || true
	return 1
}

# ---- brokers ---------------------------------------------------------------
# start_<kind> ROUND sets: broker_pid, broker_port, broker_auth (0|1).

start_mosquitto() { # ROUND AUTH
	local round="$1" auth="$2" dir
	dir="$tmp/mosquitto-r$round-a$auth"
	mkdir -p "$dir" && chmod 755 "$dir"
	free_port && broker_port="$REPLY"
	{
		echo "listener $broker_port 127.0.0.1"
		echo "log_dest stderr"
		echo "log_type error"
		echo "log_type warning"
		echo "log_type notice"
		if [[ $auth == 1 ]]; then
			echo "allow_anonymous false"
			echo "password_file $dir/passwd"
			echo "acl_file $dir/acl"
		else
			echo "allow_anonymous true"
		fi
	} >"$dir/mosquitto.conf"
	if [[ $auth == 1 ]]; then
		mosquitto_passwd -b -c "$dir/passwd" "$bench_user" "$bench_pass"
		printf 'user %s\ntopic readwrite bench/#\n' "$bench_user" >"$dir/acl"
		chmod 644 "$dir/passwd" "$dir/acl"
	fi
	chmod 644 "$dir/mosquitto.conf"
	"$mosquitto_bin" -c "$dir/mosquitto.conf" >"$dir/log" 2>&1 &
	broker_pid=$!
	live[$broker_pid]=1
	broker_auth="$auth"
	wait_port "$broker_pid" "$broker_port" 10 "$dir/log"
}

start_mochi() { # ROUND AUTH
	local round="$1" auth="$2" dir
	dir="$tmp/mochi-r$round-a$auth"
	mkdir -p "$dir"
	free_port && broker_port="$REPLY"
	local args=(-addr "127.0.0.1:$broker_port")
	[[ $auth == 1 ]] && args+=(-username "$bench_user" -password "$bench_pass" -acl 'bench/#')
	"$tmp/baremochi" "${args[@]}" >"$dir/log" 2>&1 &
	broker_pid=$!
	live[$broker_pid]=1
	broker_auth="$auth"
	wait_port "$broker_pid" "$broker_port" 10 "$dir/log"
}

start_roost() { # ROUND AUTH [BINARY]
	local round="$1" auth="$2" bin="${3:-$tmp/roost}" dir ws api cluster
	dir="$tmp/$(basename "$bin")-r$round-a$auth"
	mkdir -p "$dir/data"
	free_port && broker_port="$REPLY"
	free_port && ws="$REPLY"
	free_port && api="$REPLY"
	free_port && cluster="$REPLY"
	local authn=false
	[[ $auth == 1 ]] && authn=true
	# Only env overrides, so no config file on this machine changes the run.
	roost_env=(
		"ROOST_NODE__DATA_DIR=$dir/data"
		"ROOST_LISTENERS__TCP__DEFAULT__BIND=127.0.0.1:$broker_port"
		"ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:$ws"
		"ROOST_API__BIND=127.0.0.1:$api"
		"ROOST_CLUSTER__BIND=127.0.0.1:$cluster"
		"ROOST_AUTHN__ENABLE=$authn"
		"ROOST_LOG__LEVEL=warn"
	)
	env "${roost_env[@]}" "$bin" start >"$dir/log" 2>&1 &
	broker_pid=$!
	live[$broker_pid]=1
	broker_auth="$auth"
	wait_port "$broker_pid" "$broker_port" 60 "$dir/log" || return 1
	sleep 1 # let the single-node raft elect itself before retained writes
	if [[ $auth == 1 ]]; then
		# The user store is replicated through raft: the node must be up
		# (it is: the MQTT port answers) before the user can be added.
		local i ok=0
		for i in $(seq 1 20); do
			if env "${roost_env[@]}" "$tmp/roost" ctl users add "$bench_user" "$bench_pass" >>"$dir/ctl.log" 2>&1; then
				ok=1
				break
			fi
			sleep 0.5
		done
		if [[ $ok != 1 ]]; then
			log "roost ctl users add failed; see below"
			tail -n 10 "$dir/ctl.log" >&2 || true
			return 1
		fi
		# The same rule as Mosquitto's acl_file: $bench_user may read and
		# write bench/#, so every publish and subscribe runs the ACL check.
		if ! env "${roost_env[@]}" "$tmp/roost" ctl acl add --username "$bench_user" --topic 'bench/#' \
			--action all --permission allow >>"$dir/ctl.log" 2>&1; then
			log "roost ctl acl add failed; see below"
			tail -n 10 "$dir/ctl.log" >&2 || true
			return 1
		fi
	fi
}

start_broker() { # NAME ROUND
	case "$1" in
	mosquitto) start_mosquitto "$2" 0 ;;
	mosquitto-auth) start_mosquitto "$2" 1 ;;
	mochi) start_mochi "$2" 0 ;;
	mochi-auth) start_mochi "$2" 1 ;;
	roost) start_roost "$2" 0 ;;
	roost-auth) start_roost "$2" 1 ;;
	roost-base) start_roost "$2" 0 "$tmp/roost-base" ;;
	esac
}

broker_available() {
	case "$1" in
	mosquitto | mosquitto-auth) [[ -x $mosquitto_bin ]] ;;
	mochi | mochi-auth) true ;;
	roost | roost-auth) [[ $have_roost == 1 ]] ;;
	roost-base) [[ $have_base == 1 ]] ;;
	esac
}

# ---- scenarios -------------------------------------------------------------

scenario_args() { # NAME -> loadgen flags
	local c_fanin=10000 c_fanout=2000 c_ret=10000 c_pairs=20000
	if [[ $quick == 1 ]]; then
		c_fanin=2000 c_fanout=400 c_ret=2000 c_pairs=4000
	fi
	case "$1" in
	fanin-q0) echo "-scenario fanin -qos 0 -count $c_fanin" ;;
	fanin-q1) echo "-scenario fanin -qos 1 -count $c_fanin" ;;
	fanout-q0) echo "-scenario fanout -qos 0 -count $c_fanout" ;;
	fanout-q1) echo "-scenario fanout -qos 1 -count $c_fanout" ;;
	# A QoS 0 burst without the end-to-end throttle: 10 publisher/subscriber
	# pairs, 20,000 messages each at 60,000 msg/s in all. What is not
	# delivered shows in the delivered column.
	pairs-q0) echo "-scenario pairs -qos 0 -pubs 10 -count $c_pairs -rate 60000 -maxlag 0" ;;
	retained) echo "-scenario retained -qos 1 -count $c_ret" ;;
	esac
}

results="$tmp/results.jsonl"
: >"$results"
active=()
for b in "${broker_list[@]}"; do
	if broker_available "$b"; then
		active+=("$b")
	else
		log "skipping $b (not available)"
	fi
done
[[ ${#active[@]} -gt 0 ]] || { log "no broker to run"; exit 1; }
log "brokers: ${active[*]}; scenarios: ${scenario_list[*]}; rounds: $rounds; tmp: $tmp"

failures=0
for round in $(seq 1 "$rounds"); do
	# Rotate the broker order every round so slow phases of a noisy machine
	# do not always hit the same broker.
	n=${#active[@]}
	for k in $(seq 0 $((n - 1))); do
		b="${active[$(((k + round - 1) % n))]}"
		log "round $round/$rounds: $b"
		if ! start_broker "$b" "$round"; then
			log "could not start $b in round $round; skipping it this round"
			failures=$((failures + 1))
			continue
		fi
		auth_args=()
		[[ $broker_auth == 1 ]] && auth_args=(-username "$bench_user" -password "$bench_pass")
		for s in "${scenario_list[@]}"; do
			# shellcheck disable=SC2046,SC2086 # word splitting of the flag lists is intended
			"$tmp/loadgen" -addr "127.0.0.1:$broker_port" -label "$b" -proto "$proto" \
				-broker-pid "$broker_pid" -duration "$duration" "${auth_args[@]}" \
				$(scenario_args "$s") $extra_args >>"$results" 2>"$tmp/run.log" &
			lg_pid=$!
			live[$lg_pid]=1
			lg_rc=0
			wait "$lg_pid" || lg_rc=$?
			unset "live[$lg_pid]"
			if [[ $lg_rc != 0 ]]; then
				log "  $s: loadgen exited with status $lg_rc (see the notes column)"
				failures=$((failures + 1))
			fi
			cat "$tmp/run.log" >>"$tmp/loadgen.log"
			# The human summary: line 2 has the rate, the last line losses.
			sed -n '2p;$p' "$tmp/run.log" | sed "s/^/  $s: /" >&2
		done
		stop_pid "$broker_pid"
	done
done

# ---- report ----------------------------------------------------------------

ratios="roost/mosquitto,roost/mochi,mochi/mosquitto"
[[ $have_base == 1 ]] && ratios+=",roost/roost-base"
report="$("$tmp/benchreport" -ratios "$ratios" "$results")"
if [[ -z "$out" ]]; then
	mkdir -p bench/results
	out="bench/results/$(date +%F).md"
	[[ -e "$out" ]] && out="bench/results/$(date +%F-%H%M%S).md"
fi
commit="$(git rev-parse --short HEAD 2>/dev/null || echo none)"
dirty=""
[[ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]] && dirty=" (uncommitted changes)"
{
	echo "# Broker comparison, $(date '+%F %H:%M %Z')"
	echo
	echo "- command: \`bench/compare.sh${orig_args:+ $orig_args}\`"
	echo "- machine: $(nproc) CPUs, $(uname -sr), load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- roost commit: $commit$dirty; $(go version | cut -d' ' -f3-)"
	echo "- brokers: ${active[*]}; ${mosquitto_version:-mosquitto not run}; mochi-mqtt v2.7.9 (bench/baremochi)"
	[[ $have_base == 1 ]] && echo "- roost-base: \`$baseline_bin\` ($("$tmp/roost-base" version 2>/dev/null | head -n 1 || echo "version unknown"))"
	load="proto $proto, $rounds rounds (median shown), publishing capped at $duration per run"
	[[ $quick == 1 ]] && load+=", --quick counts"
	[[ -n "$extra_args" ]] && load+=", extra loadgen flags: $extra_args"
	echo "- load: $load"
	[[ -n "$roost_note" ]] && echo "- $roost_note"
	[[ $failures -gt 0 ]] && echo "- $failures broker starts or loadgen runs failed: see the notes column"
	echo
	echo "msg/s: deliveries per second received by the subscribers (retained: retained publishes acknowledged per second)."
	echo "p50/p99: end-to-end latency publish → subscriber (retained: publish → PUBACK), in milliseconds."
	echo "broker CPU µs/msg: CPU time the broker process used during the measured phase, per delivered (retained: stored) message."
	echo "See bench/README.md for what each number means."
	echo
	echo "$report"
	echo
	echo "<details><summary>raw loadgen results (JSON lines)</summary>"
	echo
	echo '```'
	cat "$results"
	echo '```'
	echo
	echo "</details>"
} >"$out"

echo
echo "$report"
echo
log "results written to $out"
