#!/usr/bin/env bash
# On the box (Raspberry Pi OS, as root): install vigbox into /opt/vigbox and run the
# capture daemon as the unprivileged user "vigbox" under systemd.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root: sudo bash tools/install-service.sh" >&2; exit 1; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix=/opt/vigbox
if [ "$here" != "$prefix" ]; then
  mkdir -p "$prefix"
  tar -C "$here" --exclude=./.venv --exclude=./vigbox-data --exclude=./.git -cf - . \
    | tar -C "$prefix" -xf -
fi
VIGBOX_VENV="$prefix/.venv" bash "$prefix/tools/bootstrap.sh" run >/dev/null
id vigbox >/dev/null 2>&1 || useradd --system --home-dir /var/lib/vigbox \
  --shell /usr/sbin/nologin vigbox
for group in video audio gpio; do
  if getent group "$group" >/dev/null; then usermod -aG "$group" vigbox; fi
done
install -d -m 0755 /etc/vigbox
if [ ! -f /etc/vigbox/config.toml ]; then
  install -m 0640 -g vigbox "$prefix/tools/config.example.toml" /etc/vigbox/config.toml
fi
"$prefix/.venv/bin/vigbox" --config /etc/vigbox/config.toml config check
install -m 0644 "$prefix/systemd/vigbox-capture.service" "$prefix/systemd/vigbox-encode.service" \
  "$prefix/systemd/vigbox-web.service" "$prefix/systemd/vigbox-sync.service" \
  "$prefix/systemd/vigbox-sync.timer" /etc/systemd/system/
install -d /etc/polkit-1/rules.d
install -m 0644 "$prefix/systemd/50-vigbox-poweroff.rules" /etc/polkit-1/rules.d/
systemctl daemon-reload
systemctl enable --now vigbox-capture.service vigbox-encode.service vigbox-web.service \
  vigbox-sync.timer
echo "installed: systemctl status vigbox-capture; logs: journalctl -u vigbox-capture" >&2
