"""The sync tests' kit works: real clients against the real servers of tests/sync_servers.py.

paramiko and OpenSSH's sftp against sshd, both through a proxy that cuts, stalls and
throttles; boto3's multipart upload against `rclone serve s3`; the reference age tools.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import boto3
import paramiko
import pytest
from botocore.config import Config as BotoConfig

from tests.sync_servers import (
    CuttingProxy,
    OpenSshServer,
    S3Server,
    age_binary,
    age_keygen_binary,
    openssh_server,
    s3_server,
    small_tmpfs,
)

KB = 1000
MiB = 1024 * 1024
# Any of these is how paramiko reports a connection that went away under it.
DROPPED = (paramiko.SSHException, EOFError, OSError)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[OpenSshServer]:
    """A running sshd with its own office folder."""
    with openssh_server(tmp_path) as server:
        yield server


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    """A running rclone S3 server with the bucket 'office'."""
    with s3_server(tmp_path) as server:
        yield server


@contextmanager
def ssh_client(server: OpenSshServer, *, port: int | None = None,
               known_hosts: Path | None = None,
               key: Path | None = None) -> Iterator[paramiko.SSHClient]:
    """paramiko logged in the way the sync code must: only the pinned host key, only our
    key file (no agent, no ~/.ssh), bounded waits."""
    client = paramiko.SSHClient()
    try:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if known_hosts is None:
            known_hosts = server.known_hosts if port is None else server.known_hosts_for(port)
        client.load_host_keys(str(known_hosts))
        client.connect(server.host, port=port or server.port, username=server.user,
                       pkey=paramiko.Ed25519Key.from_private_key_file(
                           str(key or server.client_key)),
                       allow_agent=False, look_for_keys=False, timeout=10,
                       banner_timeout=10, auth_timeout=10, channel_timeout=10)
        yield client
    finally:
        client.close()


def upload(client: paramiko.SSHClient, data: bytes, remote: str, *,
           pipelined: bool = True) -> None:
    """Write data to a remote file over SFTP, then check its size there: paramiko drops the
    server's errors for pipelined writes (a full disk included) and for close."""
    with closing(client.open_sftp()) as sftp:
        with sftp.open(remote, "wb") as f:
            f.set_pipelined(pipelined)
            for start in range(0, len(data), 32 * 1024):
                f.write(data[start:start + 32 * 1024])
        size = sftp.stat(remote).st_size
        if size != len(data):
            raise OSError(f"{remote} has {size} bytes, not {len(data)}")


def test_paramiko_uploads_to_sshd_with_a_pinned_host_key(sshd: OpenSshServer) -> None:
    data = os.urandom(300 * KB)
    with ssh_client(sshd) as client:
        upload(client, data, str(sshd.office / "clip.age"))
    assert (sshd.office / "clip.age").read_bytes() == data
    assert f"Accepted publickey for {sshd.user}" in sshd.log()


def test_paramiko_refuses_a_server_with_another_host_key(sshd: OpenSshServer) -> None:
    with pytest.raises(paramiko.BadHostKeyException):
        with ssh_client(sshd, known_hosts=sshd.wrong_known_hosts()):
            pass


def test_sshd_refuses_a_user_key_it_was_not_given(sshd: OpenSshServer) -> None:
    stranger = sshd.new_user_key("stranger")
    with pytest.raises(paramiko.AuthenticationException):
        with ssh_client(sshd, key=stranger):
            pass
    # Once authorized, the same key is let in.
    sshd.authorize(stranger)
    with ssh_client(sshd, key=stranger) as client:
        upload(client, b"hello", str(sshd.office / "hello"))
    assert (sshd.office / "hello").read_bytes() == b"hello"


def test_openssh_sftp_client_uploads(sshd: OpenSshServer, tmp_path: Path) -> None:
    source = tmp_path / "film.mp4"
    source.write_bytes(os.urandom(500 * KB))
    batch = tmp_path / "batch"
    batch.write_text(f"put {source} {sshd.office / 'film.mp4.part'}\n"
                     f"rename {sshd.office / 'film.mp4.part'} {sshd.office / 'film.mp4'}\n")
    done = subprocess.run(sshd.sftp_argv(batch), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30)
    assert done.returncode == 0, done.stderr + sshd.log()
    assert (sshd.office / "film.mp4").read_bytes() == source.read_bytes()


def test_a_full_office_disk_fails_the_upload(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "office", 1) as office, \
            openssh_server(tmp_path, office) as server, ssh_client(server) as client:
        # Unpipelined, so that the server's own error comes back (see `upload`).
        with pytest.raises(OSError, match="Failure"):
            upload(client, os.urandom(2 * MiB), str(office / "too-big"), pipelined=False)
        assert (office / "too-big").stat().st_size < 2 * MiB


def test_a_cut_link_breaks_the_upload_and_heals(sshd: OpenSshServer) -> None:
    with CuttingProxy(sshd.host, sshd.port) as proxy:
        proxy.cut_after(500 * KB)
        started = time.monotonic()
        with pytest.raises(DROPPED):
            with ssh_client(sshd, port=proxy.port) as client:
                upload(client, os.urandom(2 * MiB), str(sshd.office / "cut"))
        assert time.monotonic() - started < 15
        assert proxy.bytes_up == 500 * KB
        assert proxy.is_down
        assert (sshd.office / "cut").stat().st_size < 2 * MiB
        # While the link is down, a new connection fails too.
        with pytest.raises(DROPPED):
            with ssh_client(sshd, port=proxy.port):
                pass
        proxy.heal()
        with ssh_client(sshd, port=proxy.port) as client:
            upload(client, b"again", str(sshd.office / "again"))
        assert (sshd.office / "again").read_bytes() == b"again"
        assert proxy.connections == 3


def test_a_stalled_link_only_times_out_and_resumes_when_healed(sshd: OpenSshServer) -> None:
    with CuttingProxy(sshd.host, sshd.port) as proxy, \
            ssh_client(sshd, port=proxy.port) as client, closing(client.open_sftp()) as sftp:
        channel = sftp.get_channel()
        assert channel is not None
        channel.settimeout(2)
        before = proxy.bytes_up
        proxy.stall_after(100 * KB)
        f = sftp.open(str(sshd.office / "stall"), "wb")
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                for _ in range(20):
                    f.write(os.urandom(32 * 1024))
            assert 2 <= time.monotonic() - started < 10
            assert proxy.bytes_up - before == 100 * KB
            assert proxy.is_down
        finally:
            proxy.heal()
            f.close()
        assert not proxy.is_down
        upload(client, b"after", str(sshd.office / "after"))
    assert (sshd.office / "after").read_bytes() == b"after"


def test_rate_limit_paces_the_upload(sshd: OpenSshServer) -> None:
    with CuttingProxy(sshd.host, sshd.port) as proxy, \
            ssh_client(sshd, port=proxy.port) as client:
        proxy.rate_limit(200 * KB)
        before = proxy.bytes_up
        started = time.monotonic()
        upload(client, os.urandom(400 * KB), str(sshd.office / "slow"))
        took = time.monotonic() - started
    assert 1.5 <= took <= 4, f"400 kB at 200 kB/s took {took:.2f} s"
    assert proxy.bytes_up - before >= 400 * KB
    assert (sshd.office / "slow").stat().st_size == 400 * KB


def test_openssh_sftp_goes_through_the_proxy(sshd: OpenSshServer, tmp_path: Path) -> None:
    source = tmp_path / "x"
    source.write_bytes(os.urandom(100 * KB))
    batch = tmp_path / "batch"
    batch.write_text(f"put {source} {sshd.office / 'x'}\n")
    with CuttingProxy(sshd.host, sshd.port) as proxy:
        done = subprocess.run(sshd.sftp_argv(batch, port=proxy.port), capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=30)
        assert done.returncode == 0, done.stderr
        assert proxy.bytes_up > 100 * KB and proxy.bytes_down > 0
    assert (sshd.office / "x").read_bytes() == source.read_bytes()


def test_boto3_multipart_upload_to_rclone_s3(s3: S3Server) -> None:
    client = boto3.client(
        "s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key, region_name=s3.region,
        config=BotoConfig(s3={"addressing_style": "path"}, connect_timeout=5,
                          read_timeout=30, retries={"max_attempts": 1}))
    with closing(client):
        first, last = os.urandom(5 * MiB), os.urandom(1 * MiB)
        key = "box1/2024-05-01/clip.mp4.age"
        upload_id = client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
        etags = [client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload_id,
                                    PartNumber=number, Body=body)["ETag"]
                 for number, body in ((1, first), (2, last))]
        listed = client.list_parts(Bucket=s3.bucket, Key=key, UploadId=upload_id)
        assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == \
            [(1, len(first)), (2, len(last))]
        client.complete_multipart_upload(
            Bucket=s3.bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                       for n, e in zip((1, 2), etags)]})
        head = client.head_object(Bucket=s3.bucket, Key=key)
        assert head["ContentLength"] == len(first) + len(last)
    stored = s3.object_path(key)
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(first + last).digest()


def test_s3_server_refuses_a_wrong_secret(s3: S3Server) -> None:
    client = boto3.client(
        "s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
        aws_secret_access_key="not-the-secret-key", region_name=s3.region,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with closing(client), pytest.raises(client.exceptions.ClientError) as refused:
        client.put_object(Bucket=s3.bucket, Key="x", Body=b"x")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert not s3.object_path("x").exists()


def test_reference_age_round_trip(tmp_path: Path) -> None:
    age, keygen = age_binary(), age_keygen_binary()
    key = tmp_path / "key.txt"
    subprocess.run([keygen, "-o", key], check=True, capture_output=True, timeout=30)
    recipient = subprocess.run([keygen, "-y", key], check=True, capture_output=True,
                               text=True, timeout=30).stdout.strip()
    assert recipient.startswith("age1")
    plain = tmp_path / "in"
    plain.write_bytes(os.urandom(200 * KB))
    sealed = tmp_path / "out.age"
    subprocess.run([age, "-r", recipient, "-o", sealed, plain], check=True, timeout=30)
    assert sealed.read_bytes()[:21] == b"age-encryption.org/v1"
    opened = subprocess.run([age, "-d", "-i", key, sealed], check=True, capture_output=True,
                            timeout=30).stdout
    assert opened == plain.read_bytes()


def test_proxy_passes_bytes_both_ways_and_counts_them() -> None:
    with socket.create_server(("127.0.0.1", 0)) as echo_listener, \
            CuttingProxy("127.0.0.1", echo_listener.getsockname()[1]) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
        server, _ = echo_listener.accept()
        with server:
            client.sendall(b"x" * 100_000)
            received = b""
            while len(received) < 100_000:
                received += server.recv(65536)
            server.sendall(b"y" * 1000)
            reply = b""
            while len(reply) < 1000:
                reply += client.recv(65536)
        # A pump counts just after it sends: the peer may read the bytes a moment earlier.
        deadline = time.monotonic() + 5
        while (proxy.bytes_up, proxy.bytes_down) != (100_000, 1000):
            assert time.monotonic() < deadline, (proxy.bytes_up, proxy.bytes_down)
            time.sleep(0.01)
        assert proxy.connections == 1
