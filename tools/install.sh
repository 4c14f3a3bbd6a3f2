#!/usr/bin/env bash
# Installs vigbox on Raspberry Pi OS (Bookworm or later), or upgrades it in place. As root:
#   sudo bash tools/install.sh              install this checkout and switch the box to it
#   sudo bash tools/install.sh --rollback   switch back to the release that ran before
# Each install is a release, /opt/vigbox/releases/<version>-<UTC stamp>/, holding the source
# and its own venv; /opt/vigbox/current points at the release the units run. The link moves
# only after the new release passes its checks, and moves back if its services do not come
# up, so a failed upgrade leaves the previous version running. The configuration
# (/etc/vigbox) and the data (/var/lib/vigbox) are never touched, except that the config is
# created from tools/config.example.toml when it is missing.
#
# For tests, where systemd is not PID 1 and the real /opt and /etc are not theirs to change:
#   VIGBOX_INSTALL_ROOT      prefixed to every path written (default empty: the real root)
#   VIGBOX_SYSTEMCTL         the service manager's command (default systemctl)
#   VIGBOX_INSTALL_WAIT_S    how long the services may take to come up (default 60)
#   VIGBOX_INSTALL_SETTLE_S  how long they must then stay up (default 10)
#   VIGBOX_INSTALL_TEST_VENV with VIGBOX_INSTALL_ROOT only: a ready venv that each release
#                            links to instead of building its own (see build_venv)
set -euo pipefail
shopt -s nullglob
umask 022

root="${VIGBOX_INSTALL_ROOT:-}"
systemctl_cmd="${VIGBOX_SYSTEMCTL:-systemctl}"
wait_s="${VIGBOX_INSTALL_WAIT_S:-60}"
settle_s="${VIGBOX_INSTALL_SETTLE_S:-10}"
test_venv="${VIGBOX_INSTALL_TEST_VENV:-}"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
opt="$root/opt/vigbox"
releases="$opt/releases"
config_dir="$root/etc/vigbox"
config="$config_dir/config.toml"
unit_dir="$root/etc/systemd/system"
rules_dir="$root/etc/polkit-1/rules.d"
old_kept=2         # releases kept besides the current and the previous one
building=""        # the release being made: removed if the install stops before using it
down=()            # the services that did not come up, with their state

say() { echo "vigbox install: $*" >&2; }
die() { say "$*"; exit 1; }
sys_ctl() { "$systemctl_cmd" "$@"; }

# The release a link (current, previous) points at, by name; empty when there is none.
link_target() {
  local link="$opt/$1"
  [ -L "$link" ] || return 0
  basename "$(readlink "$link")"
}

# Points a link at a release atomically: a new link under a temporary name, renamed over.
set_link() {
  local tmp="$opt/.$1.new.$$"
  rm -f "$tmp" && ln -s "releases/$2" "$tmp" && mv -T "$tmp" "$opt/$1"
}

# Writes a file atomically: a copy under a temporary name in the same directory, renamed.
put_file() {
  local mode="$1" from="$2" to="$3"
  install -m "$mode" "$from" "$to.new.$$" && mv -T "$to.new.$$" "$to"
}

cleanup() {
  if [ -n "$building" ] && [ -d "$releases/$building" ] \
      && [ "$building" != "$(link_target current)" ] \
      && [ "$building" != "$(link_target previous)" ]; then
    say "removing the unfinished release $building"
    remove_release "$building"
  fi
}

remove_release() {
  # Renamed first, so a release half deleted never looks like one to run.
  local trash="$releases/.removing-$1"
  mv -T "$releases/$1" "$trash" && rm -rf "$trash"
}

ensure_user() {
  # A test root shares the real machine's accounts, which are not the test's to change.
  [ -z "$root" ] || return 0
  id vigbox >/dev/null 2>&1 || useradd --system --home-dir /var/lib/vigbox \
    --shell /usr/sbin/nologin vigbox
  local group
  for group in video audio gpio; do
    if getent group "$group" >/dev/null; then usermod -aG "$group" vigbox; fi
  done
}

ensure_config() {
  [ ! -e "$config" ] || return 0
  [ -d "$config_dir" ] || install -d -m 0755 "$config_dir"
  local group=()
  if getent group vigbox >/dev/null; then group=(-g vigbox); fi
  install -m 0640 "${group[@]}" "$releases/$1/tools/config.example.toml" "$config.new.$$"
  mv -T "$config.new.$$" "$config"
  say "created $config from tools/config.example.toml: edit it, then run vigbox config check"
}

# `vigbox` on root's PATH for the administrator, always the current release's. Another
# program's /usr/local/bin/vigbox is left alone.
link_command() {
  local bin_dir="$root/usr/local/bin" target=/opt/vigbox/current/.venv/bin/vigbox
  [ -d "$bin_dir" ] || install -d -m 0755 "$bin_dir"
  if [ -e "$bin_dir/vigbox" ] && [ "$(readlink "$bin_dir/vigbox")" != "$target" ]; then
    say "$bin_dir/vigbox is not ours, so it was left alone: use $target"
    return 0
  fi
  rm -f "$bin_dir/.vigbox.new.$$"
  ln -s "$target" "$bin_dir/.vigbox.new.$$"
  mv -T "$bin_dir/.vigbox.new.$$" "$bin_dir/vigbox"
}

new_release_name() {
  local version stamp name n=1
  version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$src/pyproject.toml" | head -n 1)"
  [ -n "$version" ] || die "no version in $src/pyproject.toml: is this a vigbox checkout?"
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  name="$version-$stamp"
  while [ -e "$releases/$name" ]; do n=$((n + 1)); name="$version-$stamp.$n"; done
  echo "$name"
}

copy_source() {
  # Owned by root whoever owns the checkout: the services and root run this code.
  tar -C "$src" --exclude=./.venv --exclude=./vigbox-data --exclude=./.git \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
    --exclude=.mypy_cache --exclude=.ruff_cache -cf - . \
    | tar -C "$releases/$1" --no-same-owner -xf -
}

build_venv() {
  local dir="$releases/$1"
  if [ -n "$test_venv" ]; then
    # Tests only: linking one ready venv keeps a test install to seconds. That venv runs
    # the code it was installed from, not this release's copy; the test that builds a real
    # release venv covers that part.
    [ -n "$root" ] || die "VIGBOX_INSTALL_TEST_VENV is for tests: set VIGBOX_INSTALL_ROOT too"
    ln -s "$test_venv" "$dir/.venv"
    return 0
  fi
  # bootstrap.sh installs the apt packages (not into a test root) and makes the venv, with
  # --system-site-packages when the system's python3 has Raspberry Pi OS's picamera2.
  local skip_apt=""
  [ -z "$root" ] || skip_apt=1
  if ! VIGBOX_VENV="$dir/.venv" VIGBOX_SKIP_APT="$skip_apt" \
      bash "$dir/tools/bootstrap.sh" run >/dev/null; then
    die "making the venv of $1 failed (see above); the running version is unchanged"
  fi
}

# The checks a release passes before the units run it; prints what failed.
check_release() {
  local venv="$releases/$1/.venv" version out
  version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$releases/$1/pyproject.toml" | head -n 1)"
  if ! out="$("$venv/bin/vigbox" --version 2>&1)" || [ "$out" != "vigbox $version" ]; then
    say "check failed: vigbox --version said: $out (expected: vigbox $version)"
    return 1
  fi
  if ! out="$(env -u VIGBOX_CONFIG -u VIGBOX_DATA_DIR "$venv/bin/vigbox" \
      --config "$config" config check 2>&1)"; then
    say "check failed: vigbox config check on $config said: $out"
    say "fix $config (tools/config.example.toml lists every setting), then install again"
    return 1
  fi
  local modules="appliance.cli, appliance.capture.daemon, appliance.encode.worker, "
  modules+="appliance.web.app, appliance.sync.run"
  # On a Pi the venv must see Raspberry Pi OS's picamera2 as the system's python3 does.
  if /usr/bin/python3 -c "import picamera2" >/dev/null 2>&1; then modules+=", picamera2"; fi
  # -I: not from the directory the install was started in (the checkout), only the venv's.
  if ! out="$("$venv/bin/python" -I -c "import $modules; print(appliance.__file__)" 2>&1)"
  then
    say "check failed: importing $modules said: $out"
    return 1
  fi
  [ -z "$test_venv" ] || return 0   # a test venv runs its own checkout's code
  if [ "$(realpath -q "$out")" != "$(realpath "$releases/$1/appliance/__init__.py")" ]; then
    say "check failed: the venv of $1 runs the code in ${out%/appliance/__init__.py}," \
      "not its own"
    return 1
  fi
}

# The units a release ships that are started at boot (those with an [Install] section):
# the services and the sync timer, not the sync service the timer starts.
wanted_units() {
  local unit
  for unit in "$releases/$1"/systemd/*.service "$releases/$1"/systemd/*.timer; do
    if grep -q '^\[Install\]' "$unit"; then basename "$unit"; fi
  done
}

# Installs a release's units and polkit rules, and takes away those it no longer ships.
# (Called under `if`, where set -e does not apply: each step says when it failed.)
install_units() {
  local from="$releases/$1/systemd" file name
  install -d -m 0755 "$unit_dir" "$rules_dir" || return 1
  for file in "$from"/*.service "$from"/*.timer; do
    put_file 0644 "$file" "$unit_dir/$(basename "$file")" || return 1
  done
  for file in "$from"/*.rules; do
    put_file 0644 "$file" "$rules_dir/$(basename "$file")" || return 1
  done
  for file in "$unit_dir"/vigbox-*.service "$unit_dir"/vigbox-*.timer; do
    name="$(basename "$file")"
    [ ! -e "$from/$name" ] || continue
    sys_ctl disable --now "$name" || say "could not stop $name, which $1 does not ship"
    rm -f "$file" || return 1
  done
  for file in "$rules_dir"/*-vigbox-*.rules; do
    [ -e "$from/$(basename "$file")" ] || rm -f "$file" || return 1
  done
}

# Waits, bounded, for the release's services to be active and stay so for settle_s seconds.
# Fills `down` with those that are not; stops early on one systemd has given up on.
units_come_up() {
  local services=() unit state steady=-1 gave_up deadline=$((SECONDS + wait_s))
  mapfile -t services < <(wanted_units "$1" | grep '\.service$')
  while :; do
    down=()
    gave_up=0
    for unit in "${services[@]}"; do
      state="$(sys_ctl is-active "$unit" 2>/dev/null)" || true
      [ "$state" = active ] && continue
      down+=("$unit")
      say "$unit is ${state:-unknown}"
      [ "$state" != failed ] || gave_up=1
    done
    if [ "${#down[@]}" -eq 0 ]; then
      [ "$steady" -ge 0 ] || steady=$SECONDS
      [ $((SECONDS - steady)) -lt "$settle_s" ] || return 0
    else
      steady=-1
      [ "$gave_up" = 0 ] || return 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

# Makes a release the one the units run: its units, the link, a restart, and the wait.
activate() {
  local units=()
  mapfile -t units < <(wanted_units "$1")
  install_units "$1" || return 1
  set_link current "$1" || return 1
  sys_ctl daemon-reload || return 1
  sys_ctl enable "${units[@]}" || return 1
  # A unit that does not start makes this fail; the wait below says which one.
  sys_ctl restart "${units[@]}" || say "restarting ${units[*]} reported a failure"
  units_come_up "$1"
}

report_down() {
  local unit
  for unit in "${down[@]}"; do
    sys_ctl status --no-pager --lines=20 "$unit" >&2 || true
  done
}

# Switches the box to a release; if its services do not come up, back to the one before.
switch_to() {
  local new="$1" old
  old="$(link_target current)"
  say "starting the services on $new"
  if activate "$new"; then
    if [ -n "$old" ] && [ "$old" != "$new" ]; then set_link previous "$old"; fi
    return 0
  fi
  local failed=("${down[@]}")
  report_down
  if [ -z "$old" ] || [ "$old" = "$new" ]; then
    building=""   # the units point at it: keep it, to see what went wrong
    die "${failed[*]} did not come up on $new, and there is no earlier release to go back" \
      "to: see journalctl -u 'vigbox-*' -b, fix the cause, and run the install again"
  fi
  say "${failed[*]} did not come up on $new: going back to $old"
  if activate "$old"; then
    say "$old runs again. Why $new failed: journalctl -u 'vigbox-*' -b (see above)"
  else
    say "$old did not come up either (${down[*]}): see journalctl -u 'vigbox-*' -b"
  fi
  exit 1
}

prune() {
  local cur prev dir name old=()
  cur="$(link_target current)"
  prev="$(link_target previous)"
  rm -rf "$releases"/.removing-*
  for dir in "$releases"/*/; do
    name="$(basename "$dir")"
    if [ "$name" != "$cur" ] && [ "$name" != "$prev" ]; then old+=("${name##*-} $name"); fi
  done
  [ "${#old[@]}" -gt "$old_kept" ] || return 0
  printf '%s\n' "${old[@]}" | sort -r -V | tail -n +"$((old_kept + 1))" \
    | while read -r _ name; do
        say "removing the old release $name"
        remove_release "$name"
      done
}

install_release() {
  ensure_user
  install -d -m 0755 "$releases"
  local name
  name="$(new_release_name)"
  building="$name"
  say "making the release $releases/$name"
  mkdir "$releases/$name"
  copy_source "$name"
  build_venv "$name"
  ensure_config "$name"
  check_release "$name" || die "$name failed its checks, so the box was not switched to it:" \
    "the running version is unchanged"
  switch_to "$name"
  building=""
  link_command
  prune
  if [ -d "$opt/.venv" ]; then
    say "$opt/.venv, $opt/appliance and the other files of the layout before releases" \
      "are no longer used: everything in $opt but releases, current and previous can go"
  fi
  say "installed $name. Config: /etc/vigbox/config.toml; data: /var/lib/vigbox;" \
    "logs: journalctl -u 'vigbox-*'; check the box: sudo vigbox doctor;" \
    "back to the previous release: sudo bash tools/install.sh --rollback"
}

rollback() {
  local cur prev
  cur="$(link_target current)"
  prev="$(link_target previous)"
  if [ -z "$prev" ] || [ ! -x "$releases/$prev/.venv/bin/vigbox" ]; then
    die "there is no previous release in $releases to roll back to"
  fi
  check_release "$prev" || die "$prev failed its checks, so the box stays on $cur"
  say "rolling back from $cur to $prev"
  switch_to "$prev"
  say "now running $prev; $cur is kept: tools/install.sh --rollback returns to it"
}

main() {
  local mode=install
  case "${1:-}" in
    "") ;;
    --rollback) mode=rollback ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
    *) die "unknown argument $1: use no argument to install, or --rollback" ;;
  esac
  if [ -z "$root" ]; then
    [ "$(id -u)" = 0 ] || die "run as root: sudo bash tools/install.sh"
    [ -d /run/systemd/system ] || die "systemd is not running: install on Raspberry Pi OS"
  fi
  install -d -m 0755 "$opt"
  exec 9>"$opt/.install.lock"
  flock -n 9 || die "another install is running (it holds $opt/.install.lock): wait for it"
  trap cleanup EXIT
  if [ "$mode" = rollback ]; then rollback; else install_release; fi
}

main "$@"
