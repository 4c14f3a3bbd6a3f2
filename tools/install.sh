#!/usr/bin/env bash
# Installs vigbox on Raspberry Pi OS (Bookworm or later), or upgrades it in place. As root:
#   sudo bash tools/install.sh              install this checkout and switch the box to it
#   sudo bash tools/install.sh --rollback   switch back to the release that ran before
# Each install is a release, /opt/vigbox/releases/<version>-<UTC stamp>/, holding the source
# and its own venv; /opt/vigbox/current points at the release the units run. The link moves
# only after the new release passes its checks, and moves back if its services do not come
# up, so a failed upgrade leaves the previous version running. Before an upgrade the
# services stop and the catalog is copied to /var/lib/vigbox/catalog.before-upgrade.sqlite3,
# which is put back if the new release fails (it may have migrated the catalog) and is
# otherwise kept until the next upgrade. --rollback refuses a release too old to read the
# catalog. Nothing else in /etc/vigbox or /var/lib/vigbox is touched, except that the config
# is created from tools/config.example.toml when it is missing.
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
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
opt="$root/opt/vigbox"
releases="$opt/releases"
config_dir="$root/etc/vigbox"
config="$config_dir/config.toml"
unit_dir="$root/etc/systemd/system"
rules_dir="$root/etc/polkit-1/rules.d"
data_dir="$root/var/lib/vigbox"   # the units' VIGBOX_DATA_DIR
catalog="$data_dir/catalog.sqlite3"
catalog_copy="$data_dir/catalog.before-upgrade.sqlite3"
old_kept=2         # releases kept besides the current and the previous one
building=""        # the release being made: removed if the install stops before using it
down=()            # the services that did not come up, with their state
stopped=""         # the release whose services this install stopped and has not restarted
catalog_copied=""  # set once this install copied the catalog to $catalog_copy

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

# Reads and copies the catalog, run by a release's python (-I: nothing from the directory the
# install was started in). Files it writes get the catalog's owner and mode, are fsynced under
# a temporary name in the same directory, then renamed over; the directory is fsynced too.
#   version DB       prints DB's schema version (PRAGMA user_version), opening it read-only
#   copy DB TO       a consistent copy of DB (SQLite's backup, WAL included) as TO, one file
#   restore COPY DB  puts COPY back as DB, deleting DB's -wal and -shm (they belong to the
#                    file replaced, and would be replayed onto COPY) just before the rename
catalog_py='
import os, shutil, sqlite3, stat, sys
from pathlib import Path

def read_only(path):
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)

def settle(tmp, like):
    st = os.stat(like)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, stat.S_IMODE(st.st_mode))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def rename(tmp, to):
    os.replace(tmp, to)
    fd = os.open(os.path.dirname(to) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def main(what, path, to=None):
    if what == "version":
        con = read_only(path)
        try:
            print(int(con.execute("PRAGMA user_version").fetchone()[0]))
        finally:
            con.close()
        return
    os.umask(0o077)  # the catalog is private until it has its own mode
    tmp = "%s.new.%d" % (to, os.getpid())
    try:
        if what == "copy":
            source, target = read_only(path), sqlite3.connect(tmp)
            try:
                source.backup(target)
                # One self-contained file, no -wal to keep with it; a service that opens
                # it again switches it back to WAL.
                target.execute("PRAGMA journal_mode=DELETE").fetchone()
            finally:
                target.close()
                source.close()
            settle(tmp, like=path)
        elif what == "restore":
            shutil.copyfile(path, tmp)
            settle(tmp, like=to if os.path.exists(to) else path)
            for stale in ("-wal", "-shm", "-journal"):
                try:
                    os.unlink(to + stale)
                except FileNotFoundError:
                    pass
        else:
            raise SystemExit("unknown command " + what)
        rename(tmp, to)
    finally:
        for leftover in (tmp, tmp + "-journal"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass

main(*sys.argv[1:])
'
catalog_do() {
  local release="$1"
  shift
  "$releases/$release/.venv/bin/python" -I -c "$catalog_py" "$@"
}

# The newest catalog schema a release reads: the number of migrations its own code has
# (appliance/catalog/schema.py; the catalog's PRAGMA user_version counts those applied, and
# a release refuses a catalog with more). Imported from the release's directory, not from
# wherever its venv points.
schema_read_by() {
  "$releases/$1/.venv/bin/python" -I -c 'import sys
sys.path.insert(0, sys.argv[1])
from appliance.catalog.schema import MIGRATIONS
print(len(MIGRATIONS))' "$releases/$1" 2>&1
}

# A release's units, the timers first: all of them, to stop; those started at boot, to start.
release_units() {
  local unit
  for unit in "$releases/$1"/systemd/*.timer "$releases/$1"/systemd/*.service; do
    basename "$unit"
  done
}
start_units() {
  local units=()
  mapfile -t units < <(wanted_units "$1")
  sys_ctl start "${units[@]}"
}

# How to put the pre-upgrade copy back by hand, for messages.
restore_by_hand() {
  local units=()
  mapfile -t units < <(release_units "$1")
  printf '\n  %s' "sudo systemctl stop ${units[*]}" \
    "sudo rm -f $catalog-wal $catalog-shm" \
    "sudo cp -p $catalog_copy $catalog"
}

# Before switching away from a running release: stops its services (systemctl waits for
# each, capture for up to its TimeoutStopSec while it finalizes a recording) so nothing
# writes the catalog, then copies the catalog to $catalog_copy. On failure the services
# start again (see cleanup) and the box stays on the release.
copy_catalog() {
  local units=()
  [ -e "$catalog" ] || return 0   # a first install: no catalog yet
  mapfile -t units < <(release_units "$1")
  say "stopping the services of $1 to copy the catalog (a recording in progress is" \
    "finalized first)"
  stopped="$1"
  sys_ctl stop "${units[@]}" || die "stopping the services of $1 failed (see above), so" \
    "the box was not switched: it stays on $1"
  catalog_do "$1" copy "$catalog" "$catalog_copy" || die "copying the catalog $catalog to" \
    "$catalog_copy failed (see above; is the disk full? df -h $data_dir), so the box was" \
    "not switched: it stays on $1"
  catalog_copied=1
  say "copied the catalog to $catalog_copy"
}

# After a release failed to come up: stops its services and puts the pre-upgrade catalog
# back, since that release may have migrated it to a schema the one before cannot read.
put_catalog_back() {
  local failed="$1" back="$2" units=()
  mapfile -t units < <(release_units "$failed")
  if ! sys_ctl stop "${units[@]}"; then
    say "stopping the services of $failed failed, so the catalog was not put back; if" \
      "$back does not start, put back the copy from before the upgrade by hand (what" \
      "$failed changed in the catalog is then lost):$(restore_by_hand "$failed")"
    return 0
  fi
  if catalog_do "$back" restore "$catalog_copy" "$catalog"; then
    say "put back the catalog as it was before the upgrade: what was recorded or changed" \
      "in the seconds $failed ran is undone"
  else
    say "putting back $catalog_copy as $catalog failed (see above); if $back does not" \
      "start, do it by hand:$(restore_by_hand "$failed")"
  fi
}

cleanup() {
  if [ -n "$stopped" ]; then
    say "starting the services of $stopped again"
    start_units "$stopped" || say "they did not start: see journalctl -u 'vigbox-*' -b"
  fi
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
  # On disk before the link moves: after a power cut, current never names files half written.
  sync || return 1
  set_link current "$1" || return 1
  stopped=""   # restarted below, whatever happens
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
# With "copy", the catalog is copied first and put back if the release fails (see
# copy_catalog): the release may migrate it, and the one before would then not start.
switch_to() {
  local new="$1" copy="$2" old was_previous
  old="$(link_target current)"
  was_previous="$(link_target previous)"
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    [ "$copy" != copy ] || copy_catalog "$old"
    # Before current moves: if the install is stopped from here on (Ctrl-C, a power cut),
    # previous names the release to go back to.
    set_link previous "$old"
  fi
  say "starting the services on $new"
  if activate "$new"; then return 0; fi
  local failed=("${down[@]}")
  report_down
  if [ -z "$old" ] || [ "$old" = "$new" ]; then
    building=""   # the units point at it: keep it, to see what went wrong
    die "${failed[*]} did not come up on $new, and there is no earlier release to go back" \
      "to: see journalctl -u 'vigbox-*' -b, fix the cause, and run the install again"
  fi
  say "${failed[*]} did not come up on $new: going back to $old"
  [ -z "$catalog_copied" ] || put_catalog_back "$new" "$old"
  local back=0
  activate "$old" || back=1
  # previous as it was before this install (set above, before current moved).
  if [ -n "$was_previous" ]; then set_link previous "$was_previous"; else rm -f "$opt/previous"; fi
  if [ "$back" = 0 ]; then
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
  switch_to "$name" copy
  building=""
  link_command
  prune
  if [ -d "$opt/.venv" ]; then
    say "$opt/.venv, $opt/appliance and the other files of the layout before releases" \
      "are no longer used: everything in $opt but releases, current and previous can go"
  fi
  if [ -n "$catalog_copied" ]; then
    say "the catalog as it was before this upgrade is kept in $catalog_copy (replaced at" \
      "the next upgrade)"
  fi
  say "installed $name. Config: /etc/vigbox/config.toml; data: /var/lib/vigbox;" \
    "logs: journalctl -u 'vigbox-*'; check the box: sudo vigbox doctor;" \
    "back to the previous release: sudo bash tools/install.sh --rollback"
}

# --rollback to a release that cannot read the catalog: it would not start, and the box
# would run nothing. The pre-upgrade copy is offered, by hand, since it loses what was
# recorded since.
refuse_rollback() {
  local cur="$1" prev="$2" has="$3" reads="$4" copy_has how
  how="$prev reads catalog schema $reads at most, but $catalog is schema $has: a newer"
  how+=" release ($cur or one before it) upgraded it. Rolling back would leave the box"
  how+=" running nothing, so it stays on $cur."
  if [ ! -e "$catalog_copy" ]; then
    die "$how There is no copy of the catalog from before the upgrade ($catalog_copy)" \
      "to go back to: stay on $cur, or install a release that reads schema $has."
  fi
  copy_has="$(catalog_do "$prev" version "$catalog_copy" 2>/dev/null)" || copy_has=""
  if ! [[ "$copy_has" =~ ^[0-9]+$ ]] || [ "$copy_has" -gt "$reads" ]; then
    die "$how The copy from before the last upgrade, $catalog_copy, is schema" \
      "${copy_has:-unknown}, which $prev cannot read either: stay on $cur."
  fi
  die "$how The catalog as it was before the upgrade is kept in $catalog_copy, but putting" \
    "it back loses everything recorded or changed since then (the recordings' files stay in" \
    "$data_dir, unknown to the catalog). If that is what you want, as root:" \
    "$(restore_by_hand "$cur")" $'\n  '"sudo bash $src/tools/install.sh --rollback"
}

rollback() {
  local cur prev
  cur="$(link_target current)"
  prev="$(link_target previous)"
  if [ -z "$prev" ] || [ ! -x "$releases/$prev/.venv/bin/vigbox" ]; then
    die "there is no previous release in $releases to roll back to"
  fi
  [ "$prev" != "$cur" ] || die "previous and current both name $cur (an install was" \
    "stopped while switching): there is no other release to roll back to"
  check_release "$prev" || die "$prev failed its checks, so the box stays on $cur"
  local copy=""
  if [ -e "$catalog" ]; then
    local has reads
    has="$(catalog_do "$prev" version "$catalog")" \
      || die "could not read the schema version of $catalog (see above), so the box stays on $cur"
    reads="$(schema_read_by "$prev")" || reads="${reads:-nothing}"
    if ! [[ "$reads" =~ ^[0-9]+$ ]]; then
      die "could not learn which catalog schema $prev reads (it said: $reads), so the box" \
        "stays on $cur"
    fi
    [ "$has" -le "$reads" ] || refuse_rollback "$cur" "$prev" "$has" "$reads"
    # A release newer than the catalog migrates it when it starts: copy it first, as for
    # an upgrade, so that if it fails the one running now gets a catalog it reads.
    [ "$has" -eq "$reads" ] || copy=copy
  fi
  say "rolling back from $cur to $prev"
  switch_to "$prev" "$copy"
  say "now running $prev; $cur is kept: tools/install.sh --rollback returns to it"
}

main() {
  local mode=install
  case "${1:-}" in
    "") ;;
    --rollback) mode=rollback ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
    *) die "unknown argument $1: use no argument to install, or --rollback" ;;
  esac
  if [ -z "$root" ]; then
    [ "$(id -u)" = 0 ] || die "run as root: sudo bash tools/install.sh"
    [ -d /run/systemd/system ] || die "systemd is not running: install on Raspberry Pi OS"
  fi
  if [ "$mode" = install ]; then
    # A checkout inside /opt/vigbox (such as a release, or /opt/vigbox/current) would be
    # copied into a release, releases and all.
    local opt_real
    opt_real="$(realpath -m "$opt")"
    case "$src/" in
      "$opt_real"/*) die "this checkout, $src, is inside $opt, where the releases live," \
        "so it cannot be installed from there: install from a checkout elsewhere (git clone" \
        "it to your home directory and run sudo bash tools/install.sh there). --rollback" \
        "works from here." ;;
    esac
  fi
  install -d -m 0755 "$opt"
  exec 9>"$opt/.install.lock"
  flock -n 9 || die "another install is running (it holds $opt/.install.lock): wait for it"
  trap cleanup EXIT
  if [ "$mode" = rollback ]; then rollback; else install_release; fi
}

main "$@"
