"""The office destination named by sync.destination."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from appliance.config import Config
from appliance.errors import ConfigError
from appliance.layout import Layout
from appliance.sync.dest_file import FolderDestination
from appliance.sync.destination import Destination


def open_destination(config: Config, layout: Layout) -> Destination | None:
    """The destination object (not yet connected), None when sync is not configured."""
    url = config.sync.destination
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FolderDestination(Path(unquote(parts.path)))
    if parts.scheme == "sftp":
        from appliance.sync.dest_sftp import SftpDestination
        return SftpDestination.from_config(config, layout)
    if parts.scheme == "s3":
        from appliance.sync.dest_s3 import S3Destination
        return S3Destination.from_config(config)
    raise ConfigError(f"'sync.destination' {url!r}: use sftp://, s3:// or file://")
