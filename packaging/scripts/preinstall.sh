#!/bin/sh
# deb preinst (install|upgrade) and rpm %pre (1 install, 2 upgrade).
# Creates the roost system user and group before the files are unpacked,
# so /etc/roost/roost.conf gets group roost.
set -e

if ! getent group roost >/dev/null 2>&1; then
  groupadd --system roost
fi
if ! getent passwd roost >/dev/null 2>&1; then
  nologin=/usr/sbin/nologin
  [ -x "$nologin" ] || nologin=/sbin/nologin
  useradd --system --gid roost --home-dir /var/lib/roost --no-create-home \
    --shell "$nologin" --comment "Roost MQTT broker" roost
fi
exit 0
