#!/bin/sh
# deb prerm (remove|upgrade|...) and rpm %preun (0 erase, 1 upgrade).
# On removal (not upgrade) stops and disables the service.
set -e

case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now roost.service >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
