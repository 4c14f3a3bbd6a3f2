#!/usr/bin/env bash
# Installs what vigbox needs and prints the venv's python on the last line.
#   bootstrap.sh [run|test]   "test" adds what the test suite needs.
# System packages come from apt when we are root; the package goes into a venv.
set -euo pipefail
purpose="${1:-run}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VIGBOX_VENV:-$here/.venv}"

pkgs=(ffmpeg libportaudio2 python3-venv fonts-dejavu-core)
if grep -qs "Raspberry Pi" /proc/device-tree/model; then
  # The camera stack and the Pi 5's GPIO library exist only as Raspberry Pi OS packages.
  pkgs+=(python3-picamera2 python3-lgpio)
  # Usually on Raspberry Pi OS images already; listed so an image without them gets them:
  # polkit applies the rule that lets the button power the box off, and NetworkManager
  # (Bookworm's network stack, not installed here) needs dnsmasq to give the tablet an
  # address on the box's own Wi-Fi (`vigbox wifi setup`).
  pkgs+=(polkitd dnsmasq-base)
fi
if [ "$purpose" = test ]; then
  # A real-time virtual microphone (PulseAudio null sink) reached through ALSA's pulse plugin.
  pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils)
  # The tablet UI in both browser engines tablets use: Chromium (driven by Playwright) and
  # WebKit, Safari's engine (WebKitGTK's WebDriver under a virtual X screen, with the
  # GStreamer plugins that play H.264/AAC MP4).
  pkgs+=(chromium webkit2gtk-driver xvfb xauth gstreamer1.0-libav gstreamer1.0-plugins-good
         gstreamer1.0-plugins-bad)
  # Sync tests: a real OpenSSH sshd (its SFTP server) that each test starts on 127.0.0.1
  # itself, with the `sftp` client to compare against, and the reference age tool to check
  # our encryption against.
  pkgs+=(openssh-server age)
  # systemd-analyze checks every unit (verify) and its exposure score (security --offline).
  pkgs+=(systemd)
  pkgs+=(zbar-tools)  # zbarimg decodes the Wi-Fi QR codes `vigbox wifi` prints (test_wifi)
  # The Wi-Fi tests run a private NetworkManager (Bookworm's, as on the Pi) in its own
  # network namespace with its own bus, and read back the profiles vigbox gives it.
  pkgs+=(network-manager)
fi
# VIGBOX_SKIP_APT=1: leave the system's packages alone (tools/install.sh sets it when it
# installs into a test root, whose packages are the real machine's).
if [ "$(id -u)" = 0 ] && [ "${VIGBOX_SKIP_APT:-}" != 1 ] \
    && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing system packages: ${missing[*]}" >&2
    if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
      # Installed only for its sshd binary: without this, installing it starts a system
      # sshd on port 22 of every interface (and the install fails in a container where
      # that start fails). Debian's init script and systemd unit honour this file.
      mkdir -p /etc/ssh
      touch /etc/ssh/sshd_not_to_be_run
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >&2 </dev/null
  fi
elif ! command -v ffmpeg >/dev/null 2>&1; then
  echo "ffmpeg is missing: run this as root once, or: sudo apt-get install ${pkgs[*]}" >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  args=()
  # Raspberry Pi OS ships picamera2 (and libcamera) only as apt packages.
  if /usr/bin/python3 -c "import picamera2" >/dev/null 2>&1; then
    args+=(--system-site-packages)
  fi
  python3 -m venv "${args[@]}" "$venv" >&2
fi
extra=""
[ "$purpose" = test ] && extra="[test]"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here$extra" >&2 </dev/null
echo "$venv/bin/python"
