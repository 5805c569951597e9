#!/bin/sh
# deb postrm (remove|purge|upgrade|...) and rpm %postun (0 erase, 1 upgrade).
# Keeps /var/lib/roost and the roost user in every case: the data dir is
# the node's identity and replicated data, and deleting it is the
# operator's decision (docs/install.md).
set -e

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi

case "$1" in
  remove|purge|0)
    if [ -d /var/lib/roost ]; then
      echo "roost: kept the data dir /var/lib/roost and the user roost; delete them yourself if you no longer need them"
    fi
    ;;
esac
exit 0
