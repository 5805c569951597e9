#!/usr/bin/env bash
# Packaging check, run by .ci/run after the test suite (and by
# `make package-test`):
#
#   1. make dist: tarball, .deb, .rpm;
#   2. the .deb installed for real with dpkg -i: files, owners, modes, the
#      roost user, conffile, unit, man page, `roost paths`, `roost version`;
#      a node started as user roost with the packaged config serves MQTT
#      (user added through `roost ctl`), stops cleanly on SIGTERM;
#   3. upgrade to a rebuilt, higher-versioned .deb keeps an edited
#      /etc/roost/roost.conf and the data dir;
#   4. dpkg -r keeps /var/lib/roost and the config; dpkg --purge removes the
#      config and still keeps /var/lib/roost;
#   5. the tarball unpacked into a temp dir: bin/roost finds etc/roost.conf
#      and data/, and `bin/roost ctl data export` lands in data/backup/.
#
# It installs a real package on this machine, so it only runs as root with
# dpkg, refuses to run when anything of a roost install is already there
# (it would not know what to leave behind), and always removes what it
# installed: the package, /etc/roost, /var/lib/roost, the roost user and
# group. Do not run it while `go test ./test/e2e/...` runs on the same
# machine: those tests look at /etc/roost/roost.conf.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export LC_ALL=C

say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'packaging/ci-test.sh: skipped: %s\n' "$*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root (it installs the .deb with dpkg -i)"
command -v dpkg >/dev/null || skip "no dpkg on this machine"
for tool in make tar gzip setpriv mosquitto_pub mosquitto_sub getent useradd; do
  command -v "$tool" >/dev/null || fail "$tool is needed (see .ci/run)"
done

started=$SECONDS
V1=0.0.1
V2=0.0.2
work=$(mktemp -d /tmp/roost-pkg.XXXXXX)
dist=$work/dist
node_pid=""
tar_pid=""

# One run at a time on a machine.
exec 9>/tmp/roost-package-test.lock
flock -n 9 || fail "another packaging/ci-test.sh is running"

# The e2e tests look at /etc/roost/roost.conf: on a shared machine, wait
# until none runs (in CI they ran before this script).
for i in $(seq 1 600); do
  pgrep -x e2e.test >/dev/null || break
  [ "$i" = 1 ] && echo "waiting for running e2e tests (e2e.test) to finish before installing the package..."
  sleep 1
done
pgrep -x e2e.test >/dev/null && fail "e2e tests still running after 10 minutes"

# Nothing of a roost install may exist yet. The e2e test
# TestPathsPackageRule creates /etc/roost/roost.conf for a moment: wait
# for it to go.
for _ in $(seq 1 30); do
  [ -e /etc/roost ] || break
  sleep 1
done
[ ! -e /etc/roost ] || fail "/etc/roost exists on this machine: not touching it"
[ ! -e /var/lib/roost ] || fail "/var/lib/roost exists on this machine: not touching it"
! getent passwd roost >/dev/null || fail "a user roost exists on this machine: not touching it"
! getent group roost >/dev/null || fail "a group roost exists on this machine: not touching it"
! dpkg-query -W roost >/dev/null 2>&1 || fail "a roost package is known to dpkg: not touching it"

cleanup() {
  local rc=$?
  set +e
  for pid in $node_pid $tar_pid; do
    kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if dpkg-query -W roost >/dev/null 2>&1; then
    dpkg --purge roost >/dev/null 2>&1 || echo "cleanup: dpkg --purge roost failed" >&2
  fi
  getent passwd roost >/dev/null && userdel roost
  getent group roost >/dev/null && groupdel roost
  rm -rf /etc/roost /var/lib/roost "$work"
  if [ "$rc" = 0 ]; then
    say "packaging check passed in $((SECONDS - started))s; machine cleaned up"
  else
    echo "packaging check FAILED (exit $rc) after $((SECONDS - started))s; machine cleaned up" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mode owner group of a path
perms() { stat -c '%a %U %G' "$1"; }
want_perms() {
  local got
  got=$(perms "$1")
  [ "$got" = "$2" ] || fail "$1: mode/owner/group '$got', want '$2'"
}
contains() { # what text needle...
  local what=$1 text=$2
  shift 2
  for n in "$@"; do
    grep -qF -- "$n" <<<"$text" || fail "$what does not contain '$n':
$text"
  done
}
# Runs roost as root the way an operator's shell would, with no ROOST_*
# variables from the CI environment and from /, so ./data cannot matter.
roost_root() { (cd / && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"); }

# wait_ready BIN PID [ENV...]: until `BIN ctl status` answers (30s).
wait_ready() {
  local bin=$1 pid=$2
  shift 2
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (cd / && env -i PATH=/usr/bin:/bin "$@" "$bin" ctl status >/dev/null 2>&1); then
      return 0
    fi
    sleep 0.1
  done
  return 1
}
# stop_node PID: SIGTERM, then the exit status within 60s.
stop_node() {
  local pid=$1
  kill -TERM "$pid"
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && fail "node $pid did not stop within 60s of SIGTERM"
  local rc=0
  wait "$pid" || rc=$?
  return "$rc"
}
port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
# mqtt_roundtrip HOST PORT USER PASS: a QoS 1 message through the broker.
mqtt_roundtrip() {
  local host=$1 port=$2 user=$3 pass=$4 topic="ci/pkg/$$" got
  mosquitto_sub -h "$host" -p "$port" -u "$user" -P "$pass" -t "$topic" -q 1 -C 1 -W 15 >"$work/sub.out" &
  local sub=$!
  sleep 0.5
  for _ in $(seq 1 20); do
    mosquitto_pub -h "$host" -p "$port" -u "$user" -P "$pass" -t "$topic" -q 1 -m "hello from the package" || true
    if [ -s "$work/sub.out" ]; then break; fi
    sleep 0.25
  done
  wait "$sub" || true
  got=$(cat "$work/sub.out")
  [ "$got" = "hello from the package" ] || fail "MQTT round trip on $host:$port: subscriber got '$got'"
  # A wrong password is refused (authn is on in the packaged config).
  if mosquitto_pub -h "$host" -p "$port" -u "$user" -P wrong -t "$topic" -m x 2>/dev/null; then
    fail "a wrong password was accepted on $host:$port"
  fi
}

# ---------------------------------------------------------------------------
say "make dist VERSION=$V1 (into $dist)"
t0=$SECONDS
make --no-print-directory dist VERSION=$V1 DIST="$dist" >"$work/make1.log" 2>&1 || { cat "$work/make1.log"; fail "make dist"; }
say "make dist took $((SECONDS - t0))s"
arch=$(go env GOARCH)
deb1=$dist/roost_${V1}_${arch}.deb
tgz=$dist/roost-${V1}-linux-${arch}.tar.gz
rpm1=$(ls "$dist"/roost-${V1}-1.*.rpm)
for f in "$deb1" "$tgz" "$rpm1"; do [ -s "$f" ] || fail "make dist did not produce $f"; done
ls -l "$dist"

# The deb's metadata.
info=$(dpkg-deb --info "$deb1")
contains "dpkg-deb --info" "$info" "Package: roost" "Version: $V1" "Architecture: $arch" "conffiles"
dpkg-deb -e "$deb1" "$work/ctrl"
[ "$(cat "$work/ctrl/conffiles")" = /etc/roost/roost.conf ] || fail "conffiles: $(cat "$work/ctrl/conffiles")"
contents=$(dpkg-deb -c "$deb1")
contains "dpkg-deb -c" "$contents" "./usr/bin/roost" "root/roost" "./etc/roost/roost.conf" \
  "./usr/lib/systemd/system/roost.service" "./usr/share/man/man1/roost.1.gz"
grep -q '/var/lib/roost' <<<"$contents" && fail "the package must not own /var/lib/roost (removal would touch it)"
# The rpm, when rpm is there to read it.
if command -v rpm >/dev/null; then
  rq() { rpm -qp --qf "$1" "$rpm1" 2>/dev/null; }
  [ "$(rq '%{NAME} %{VERSION}')" = "roost $V1" ] || fail "rpm name/version: $(rq '%{NAME} %{VERSION}')"
  rfiles=$(rq '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]')
  echo "$rfiles"
  contains "rpm files" "$rfiles" "/etc/roost/roost.conf -rw-r----- root roost cn" \
    "/usr/bin/roost -rwxr-xr-x root root" "/usr/lib/systemd/system/roost.service " "/usr/share/man/man1/roost.1.gz "
  grep -q '^/var/lib/roost' <<<"$rfiles" && fail "the rpm must not own /var/lib/roost"
  contains "rpm scripts" "$(rq '%{PREIN}\n%{POSTIN}\n%{PREUN}\n%{POSTUN}')" "useradd --system" \
    "install -d -m 0700 -o roost -g roost /var/lib/roost" "systemctl disable --now roost.service"
else
  echo "(rpm not installed: the .rpm's contents are not inspected)"
fi

# ---------------------------------------------------------------------------
say "dpkg -i $(basename "$deb1")"
dpkg -i "$deb1" </dev/null
want_perms /usr/bin/roost "755 root root"
want_perms /etc/roost/roost.conf "640 root roost"
want_perms /var/lib/roost "700 roost roost"
want_perms /usr/lib/systemd/system/roost.service "644 root root"
cmp -s etc/roost.conf /etc/roost/roost.conf || fail "/etc/roost/roost.conf is not the shipped etc/roost.conf"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd roost)
[ "$home" = /var/lib/roost ] || fail "roost's home is $home"
case "$shell" in */nologin) ;; *) fail "roost's shell is $shell" ;; esac
[ "$uid" -lt 1000 ] || fail "roost is not a system user (uid $uid)"
contains "dpkg conffiles" "$(dpkg-query -W -f='${Conffiles}' roost)" /etc/roost/roost.conf
unit=$(cat /usr/lib/systemd/system/roost.service)
contains "roost.service" "$unit" "ExecStart=/usr/bin/roost start" "User=roost" "Group=roost" \
  "Restart=on-failure" "KillSignal=SIGTERM" "TimeoutStopSec=" "LimitNOFILE=" "ReadWritePaths=/var/lib/roost"
if command -v systemd-analyze >/dev/null; then
  # Informative only: in a container without systemd it may not work.
  if out=$(systemd-analyze verify /usr/lib/systemd/system/roost.service 2>&1); then
    echo "systemd-analyze verify: ok${out:+ ($out)}"
  else
    echo "systemd-analyze verify (not fatal here): $out"
  fi
fi
man=$(gzip -dc /usr/share/man/man1/roost.1.gz)
contains "man page" "$man" ".TH ROOST 1" /etc/roost/roost.conf /var/lib/roost /opt/roost/etc/roost.conf "roost/etc/roost.conf"
contains "roost help" "$(roost_root roost help)" /etc/roost/roost.conf /var/lib/roost

ver=$(roost_root roost version)
ver_re="^roost $V1 \\(commit ([0-9a-f]{7,}|unknown), built [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\\)$"
[[ "$ver" =~ $ver_re ]] || fail "roost version: $ver"
echo "$ver"

paths=$(roost_root roost paths)
echo "$paths"
contains "roost paths" "$paths" "/etc/roost/roost.conf" "(package install: /etc/roost)" \
  "/var/lib/roost" "/var/lib/roost/backup"
grep -qE '^data dir +/var/lib/roost +\(package install\)$' <<<"$paths" || fail "roost paths: data dir line"
pj=$(roost_root roost paths --output json)
contains "roost paths --output json" "$pj" '"config_file": "/etc/roost/roost.conf"' \
  '"config_rule": "package install"' '"data_dir": "/var/lib/roost"' '"data_dir_rule": "package install"'
# The node's user reads the config (0640 root:roost) and gets the same answer.
pr=$(cd / && env -i PATH=/usr/bin:/bin setpriv --reuid=roost --regid=roost --init-groups -- /usr/bin/roost paths --output json)
contains "roost paths as user roost" "$pr" '"config_rule": "package install"' '"data_dir": "/var/lib/roost"'

# ---------------------------------------------------------------------------
# A node as user roost with the packaged config. The default ports when
# they are free (a CI machine); else loopback port 0 from the environment
# (a busy dev box) -- the config file is the packaged one either way.
portenv=()
if port_free 1883 && port_free 8083 && port_free 18083 && port_free 4370; then
  say "starting the packaged node as user roost on the default ports"
else
  say "default ports busy: starting the packaged node on free loopback ports"
  portenv=(ROOST_LISTENERS__TCP__DEFAULT__BIND=127.0.0.1:0 ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:0
    ROOST_API__BIND=127.0.0.1:0 ROOST_CLUSTER__BIND=127.0.0.1:0)
fi
start_packaged() {
  (cd / && exec env -i PATH=/usr/bin:/bin HOME=/var/lib/roost "${portenv[@]}" \
    setpriv --reuid=roost --regid=roost --init-groups -- /usr/bin/roost start) >>"$work/node.log" 2>&1 &
  node_pid=$!
  wait_ready /usr/bin/roost "$node_pid" || { cat "$work/node.log"; fail "packaged node not ready"; }
}
start_packaged
status=$(roost_root roost ctl status)
echo "$status"
mqtt=$(awk '$1 == "tcp:default" {print $3}' <<<"$status")
[ -n "$mqtt" ] || fail "no tcp:default listener in ctl status"
contains "node log" "$(cat "$work/node.log")" "config=/etc/roost/roost.conf" "data_dir=/var/lib/roost"
# Everything the node wrote is the roost user's.
bad=$(find /var/lib/roost ! -user roost)
[ -z "$bad" ] || fail "files in /var/lib/roost not owned by roost: $bad"
[ -S /var/lib/roost/roost.sock ] || fail "no control socket in /var/lib/roost"
want_perms /var/lib/roost/initial-admin-password "600 roost roost"
node_id=$(roost_root roost ctl status --output json | sed -n 's/^ *"node_id": "\(.*\)",$/\1/p')

roost_root roost ctl users add ci-pkg 'pkg-s3cret' >/dev/null
host=${mqtt%:*}
case "$host" in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac   # a wildcard bind
mqtt_roundtrip "$host" "${mqtt##*:}" ci-pkg 'pkg-s3cret'
say "MQTT publish/subscribe through the packaged node: ok"
export_out=$(roost_root roost ctl data export)
contains "ctl data export" "$export_out" "/var/lib/roost/backup/roost-export-"
stop_node "$node_pid" || fail "packaged node exited $? on SIGTERM:
$(tail -20 "$work/node.log")"
node_pid=""
contains "node log" "$(tail -3 "$work/node.log")" "node stopped cleanly"

# ---------------------------------------------------------------------------
say "upgrade to $V2 keeps an edited /etc/roost/roost.conf and the data"
edit="# edited by packaging/ci-test.sh before the upgrade"
echo "$edit" >>/etc/roost/roost.conf
chmod 0640 /etc/roost/roost.conf
make --no-print-directory deb VERSION=$V2 DIST="$dist" >"$work/make2.log" 2>&1 || { cat "$work/make2.log"; fail "make deb VERSION=$V2"; }
deb2=$dist/roost_${V2}_${arch}.deb
dpkg -i "$deb2" </dev/null
[ "$(dpkg-query -W -f='${Version}' roost)" = "$V2" ] || fail "dpkg did not upgrade to $V2"
contains "roost version after upgrade" "$(roost_root roost version)" "roost $V2 "
[ "$(tail -1 /etc/roost/roost.conf)" = "$edit" ] || fail "the upgrade lost the edit of /etc/roost/roost.conf"
[ ! -e /etc/roost/roost.conf.dpkg-new ] || fail "the upgrade left roost.conf.dpkg-new"
want_perms /etc/roost/roost.conf "640 root roost"
want_perms /var/lib/roost "700 roost roost"
# Same node, same data: the user added before the upgrade still logs in.
start_packaged
got_id=$(roost_root roost ctl status --output json | sed -n 's/^ *"node_id": "\(.*\)",$/\1/p')
[ "$got_id" = "$node_id" ] || fail "node id after upgrade $got_id, want $node_id"
mqtt=$(roost_root roost ctl status | awk '$1 == "tcp:default" {print $3}')
mqtt_roundtrip "$host" "${mqtt##*:}" ci-pkg 'pkg-s3cret'
stop_node "$node_pid" || fail "upgraded node exited $? on SIGTERM"
node_pid=""

# ---------------------------------------------------------------------------
say "dpkg -r keeps the data and the config; dpkg --purge keeps the data"
dpkg -r roost </dev/null
[ ! -e /usr/bin/roost ] || fail "dpkg -r left /usr/bin/roost"
[ ! -e /usr/lib/systemd/system/roost.service ] || fail "dpkg -r left the unit"
[ -f /var/lib/roost/node.json ] || fail "dpkg -r removed /var/lib/roost"
[ "$(tail -1 /etc/roost/roost.conf)" = "$edit" ] || fail "dpkg -r removed or changed the config"
dpkg --purge roost </dev/null
[ ! -e /etc/roost/roost.conf ] || fail "dpkg --purge left /etc/roost/roost.conf"
[ -f /var/lib/roost/node.json ] || fail "dpkg --purge removed /var/lib/roost"
getent passwd roost >/dev/null || fail "dpkg --purge removed the roost user (the data dir is still its)"

# ---------------------------------------------------------------------------
say "tarball $(basename "$tgz")"
tdir=$work/tarball
mkdir -p "$tdir"
tar -C "$tdir" -xzf "$tgz"
root=$tdir/roost
[ "$(cd "$root" && find . | LC_ALL=C sort | tr '\n' ' ')" = \
  ". ./README ./bin ./bin/roost ./data ./etc ./etc/roost.conf ./share ./share/man ./share/man/man1 ./share/man/man1/roost.1 " ] ||
  fail "tarball layout: $(cd "$root" && find . | sort | tr '\n' ' ')"
cmp -s etc/roost.conf "$root/etc/roost.conf" || fail "tarball etc/roost.conf is not the shipped one"
tpaths=$(cd "$work" && env -i PATH=/usr/bin:/bin "$root/bin/roost" paths)
echo "$tpaths"
contains "tarball roost paths" "$tpaths" "$root/etc/roost.conf" "(install dir: $root, binary in $root/bin)" \
  "$root/data " "(install dir)" "$root/data/backup"
tenv=(ROOST_LISTENERS__TCP__DEFAULT__BIND=127.0.0.1:0 ROOST_LISTENERS__WS__DEFAULT__BIND=127.0.0.1:0
  ROOST_API__BIND=127.0.0.1:0 ROOST_CLUSTER__BIND=127.0.0.1:0)
(cd "$work" && exec env -i PATH=/usr/bin:/bin "${tenv[@]}" "$root/bin/roost" start) >"$work/tar.log" 2>&1 &
tar_pid=$!
wait_ready "$root/bin/roost" "$tar_pid" || { cat "$work/tar.log"; fail "tarball node not ready"; }
contains "tarball node log" "$(cat "$work/tar.log")" "config=$root/etc/roost.conf" "data_dir=$root/data"
[ -f "$root/data/node.json" ] && [ -S "$root/data/roost.sock" ] || fail "the tarball node's files are not in $root/data"
texp=$(cd "$work" && env -i PATH=/usr/bin:/bin "$root/bin/roost" ctl data export --name ci-export.json.gz)
contains "tarball ctl data export" "$texp" "$root/data/backup/ci-export.json.gz"
[ -s "$root/data/backup/ci-export.json.gz" ] || fail "export not in $root/data/backup"
gzip -t "$root/data/backup/ci-export.json.gz" || fail "export is not gzip"
stop_node "$tar_pid" || fail "tarball node exited $? on SIGTERM"
tar_pid=""
[ ! -e "$work/data" ] || fail "the tarball node made ./data in the working dir"
