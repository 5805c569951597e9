#!/bin/sh
# Prints the version `make dist` stamps into the binary and the packages.
#
#   tag v1.2.3 on HEAD           -> 1.2.3
#   3 commits after v1.2.3       -> 1.2.3+3.gabc1234       (git describe, reshaped)
#   no tag                       -> 0.0.0-dev+abc1234
#   uncommitted changes          -> ... with .dirty added to the +metadata
#   not a git checkout           -> 0.0.0-dev
#
# The result starts with a digit (deb and rpm require it) and has no "-"
# after the first one, so nfpm's semver parsing reads it as
# version[-prerelease][+metadata]. Override with `make dist VERSION=x.y.z`.
set -eu
cd "$(dirname "$0")/.."

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo 0.0.0-dev
  exit 0
fi
dirty=""
if ! git diff --quiet HEAD -- 2>/dev/null; then
  dirty=dirty
fi
# Only tags that look like versions (v1.2.3 or 1.2.3) count.
if desc=$(git describe --tags --match 'v[0-9]*' --match '[0-9]*' 2>/dev/null); then
  desc=${desc#v}
  case "$desc" in
    *-*-g*)                                  # 1.2.3-4-gabc1234
      base=${desc%-*-g*}
      rest=${desc#"$base"-}                  # 4-gabc1234
      meta="${rest%%-g*}.g${rest#*-g}"
      ;;
    *) base=$desc; meta="" ;;
  esac
  if [ -n "$dirty" ]; then meta="${meta:+$meta.}$dirty"; fi
  echo "$base${meta:++$meta}"
  exit 0
fi
commit=$(git rev-parse --short=7 HEAD)
echo "0.0.0-dev+$commit${dirty:+.$dirty}"
