"""MP4 structure checks catch files that ffmpeg reports as written but are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import ffmpeg_tool
from appliance.errors import MediaError
from appliance.mp4 import check_faststart, top_level_boxes

LAVFI = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2"]


def make(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    ffmpeg_tool.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *LAVFI, "-c:v", "libx264",
                     "-preset", "ultrafast", "-c:a", "aac", *extra, str(out)], timeout=60,
                    what="making a test file")
    return out


def test_faststart_and_plain_files(tmp_path: Path) -> None:
    fast = make(tmp_path, "fast.mp4", "-movflags", "+faststart")
    check_faststart(fast)
    plain = make(tmp_path, "plain.mp4")
    assert [k for k, _ in top_level_boxes(plain)][-1] == "moov"
    with pytest.raises(MediaError, match="not at the front"):
        check_faststart(plain)


def test_reserved_index_space_too_small_is_caught(tmp_path: Path) -> None:
    # ffmpeg 5 exits 0 here while writing its index over the media data.
    with pytest.raises(MediaError):
        make(tmp_path, "small.mp4", "-moov_size", "512")


def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    fast = make(tmp_path, "fast.mp4", "-movflags", "+faststart")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    with pytest.raises(MediaError, match="corrupt box|truncated"):
        top_level_boxes(cut)
