"""A real NetworkManager (Debian's, as Raspberry Pi OS ships it) for the Wi-Fi tests: its
own system bus, its own network namespace (so it manages nothing of this machine's: it
sees only a loopback device) and its own mount namespace (its run and state folders are
the test's), with its keyfile folder in the test's temp dir. Its `nmcli` is the real one,
pointed at the private bus by DBUS_SYSTEM_BUS_ADDRESS. There is no Wi-Fi device, so a
profile can be saved, read and removed, and starting it fails as with no radio."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Its own network and mounts (not its own processes: NetworkManager asks the bus who
# calls it, and a caller outside a PID namespace has no PID inside it). A killed test
# run takes it along: the kernel's parent-death signal, for the shell that starts them
# both and for each of them.
UNSHARE = ["unshare", "--net", "--mount", "--propagation", "private"]
PDEATHSIG = ["setpriv", "--pdeathsig", "KILL"]

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

# Root may do anything without polkit (none runs here); nothing of this machine's DNS,
# hostname or wired devices is touched.
NM_CONFIG = """[main]
plugins=keyfile
auth-polkit=false
dns=none
rc-manager=unmanaged
hostname-mode=none
no-auto-default=*
[keyfile]
path={keyfiles}
[logging]
level=INFO
"""

# Inside the namespaces: private run and state folders (the package makes both; on a
# machine without it the empty folders are made, and stay), the radio kill switch out of
# reach (rfkill is not per namespace: this NetworkManager must not switch on the
# machine's Wi-Fi), the bus, then NetworkManager (--debug: in the foreground, its log on
# stderr, which goes to the test's log file). The test's own deadline bounds the wait.
# The shell stays, to stop and reap both.
START = """set -e
mkdir -p /run/NetworkManager /var/lib/NetworkManager
mount -t tmpfs -o mode=0755 tmpfs /run/NetworkManager
mount --bind "$ROOT/state" /var/lib/NetworkManager
if [ -e /dev/rfkill ]; then mount --bind /dev/null /dev/rfkill; fi
setpriv --pdeathsig KILL dbus-daemon --config-file="$ROOT/bus.conf" --nofork --nopidfile &
bus=$!
until [ -S "$ROOT/bus" ]; do sleep 0.05; done
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$ROOT/bus"
setpriv --pdeathsig KILL NetworkManager --debug --config="$ROOT/nm.conf" \\
  --config-dir="$ROOT/none" --system-config-dir="$ROOT/none" \\
  --state-file="$ROOT/state/NetworkManager.state" --intern-config="$ROOT/state/intern.conf" \\
  --pid-file="$ROOT/state/nm.pid" &
nm=$!
set +e
trap 'kill -TERM $nm $bus 2>/dev/null' TERM INT
wait $nm
kill -TERM $nm $bus 2>/dev/null
wait   # both reaped here, none left to the machine's init
"""


@dataclass(frozen=True)
class NetworkManager:
    """The running NetworkManager: its keyfile folder and the environment nmcli needs."""

    keyfiles: Path
    bus_address: str
    log: Path

    def env(self) -> dict[str, str]:
        """Variables for a process whose nmcli must reach this NetworkManager."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.bus_address,
                "VIGBOX_NM_KEYFILE_DIR": str(self.keyfiles)}

    def nmcli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real nmcli against this NetworkManager."""
        done = subprocess.run(["nmcli", *args], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, env=os.environ | self.env())
        if check and done.returncode != 0:
            raise AssertionError(f"nmcli {' '.join(args)}: {done.stderr.strip()}")
        return done

    def field(self, uuid: str, name: str) -> str:
        """One field of a profile as NetworkManager holds it (secrets shown). nmcli now
        and then prints a secret blank (see wifi_service.SECRET_READS): asked again."""
        for _ in range(5):
            out = self.nmcli("-s", "--escape", "no", "-g", name, "connection", "show",
                             "uuid", uuid).stdout.removesuffix("\n")
            if out:
                break
        return out

    def profiles(self) -> list[tuple[str, str, str]]:
        """(UUID, NAME, FILENAME) of every profile NetworkManager knows."""
        out = self.nmcli("--escape", "no", "-t", "-f", "UUID,NAME,FILENAME", "connection",
                         "show").stdout
        # A UUID has no ':'; a keyfile path here has none either.
        rows = [line.split(":") for line in out.splitlines() if line]
        return [(r[0], ":".join(r[1:-1]), r[-1]) for r in rows]


def unavailable() -> str | None:
    """Why a private NetworkManager cannot run here, if it cannot."""
    if os.geteuid() != 0:
        return "a private NetworkManager needs root (namespaces, its run folder)"
    for tool in ("NetworkManager", "nmcli", "dbus-daemon", "unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (network-manager, from tools/bootstrap.sh test)"
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        return f"no new namespaces here (a container without CAP_SYS_ADMIN?): " \
            f"{probe.stderr.strip()}"
    return None


@contextmanager
def running_network_manager(root: Path) -> Iterator[NetworkManager]:
    """NetworkManager for the length of a `with` block; stopped (its namespaces, bus and
    mounts with it) however the block ends."""
    why = unavailable()
    if why:
        pytest.skip(why)
    root.mkdir(parents=True, exist_ok=True)
    keyfiles, state, socket = root / "system-connections", root / "state", root / "bus"
    for folder in (keyfiles, state, root / "none"):
        folder.mkdir(mode=0o700)
    (root / "bus.conf").write_text(BUS_CONFIG.format(socket=socket))
    (root / "nm.conf").write_text(NM_CONFIG.format(keyfiles=keyfiles))
    log = root / "NetworkManager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*PDEATHSIG, *UNSHARE, "bash", "-c", START],
                                env=os.environ | {"ROOT": str(root)},
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    nm = NetworkManager(keyfiles, f"unix:path={socket}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while nm.nmcli("-t", "general", "status", check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("NetworkManager did not start: "
                                     + log.read_text(errors="replace")[-1000:])
            time.sleep(0.1)
        yield nm
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to NetworkManager and its bus, SIGKILL if they linger; reaped."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(STOP_TIMEOUT_S)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
