#!/bin/sh
# deb postinst (configure [old-version]) and rpm %post (1 install, 2 upgrade).
# Creates the data dir (not part of the package, so removing the package
# never touches it) and tells systemd about the unit, if systemd runs.
# Nothing is enabled or started: see docs/install.md.
set -e

upgrade=false
case "$1" in
  configure) [ -n "${2:-}" ] && upgrade=true ;;   # deb: $2 is the old version
  [0-9]*) [ "$1" -gt 1 ] && upgrade=true ;;       # rpm: instances after this one
  *) exit 0 ;;   # abort-upgrade, abort-remove, ...: nothing to do
esac

if [ ! -e /var/lib/roost ]; then
  install -d -m 0700 -o roost -g roost /var/lib/roost
fi

# The config may hold secrets (cookie, passwords): root writes it, the
# node (group roost) reads it. dpkg and rpm set this from the package; say
# it again on a first install in case the group did not resolve at unpack.
if [ "$upgrade" = false ] && [ -f /etc/roost/roost.conf ]; then
  chown root:roost /etc/roost/roost.conf
  chmod 0640 /etc/roost/roost.conf
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  if [ "$upgrade" = true ]; then
    # A running node picks up the new binary; a stopped one stays stopped.
    systemctl try-restart roost.service >/dev/null 2>&1 || true
  fi
fi

if [ "$upgrade" = false ]; then
  echo "roost: installed. Config /etc/roost/roost.conf, data /var/lib/roost."
  echo "roost: start it with: systemctl enable --now roost"
fi
exit 0
