"""Encoder benchmark on a 10-minute 720p30 recording.

    python bench/encode.py [--minutes 10] [--clip-seconds 10]

Makes the recording's raw parts (H.264 with a keyframe a second, AAC), then times:
finalize (the remux that ends a recording), review assets, a fast and an exact
clip (as a fraction of the clip's length), a still, and - as the baseline, in the
same run - the same exact clip made by a plain full re-encode (ffmpeg decoding
from the start, output-side seek).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import ffmpeg_tool  # noqa: E402
from appliance.capture.finalize import moov_reserve, mux_argv  # noqa: E402
from appliance.catalog import Catalog  # noqa: E402
from appliance.config import parse_config  # noqa: E402
from appliance.encode.worker import EncodeWorker  # noqa: E402
from appliance.services import media  # noqa: E402
from appliance.services.app import App  # noqa: E402
from appliance.services.imports import import_file  # noqa: E402

ACTOR = "bench"


def timed(fn: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()  # type: ignore[operator]
    return time.perf_counter() - start, result


def make_sources(tmp: Path, seconds: int) -> tuple[Path, Path]:
    video, audio = tmp / "video.h264", tmp / "audio.aac"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1280x720:rate=30:duration={seconds}", "-c:v", "libx264",
                    "-preset", "ultrafast", "-b:v", "6M", "-g", "30", "-keyint_min", "30",
                    "-x264-params", "aud=1:repeat-headers=1", "-f", "h264", str(video)],
                   check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}:sample_rate=48000", "-ac", "1",
                    "-c:a", "aac", "-b:a", "128k", "-f", "adts", str(audio)], check=True)
    return video, audio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    args = parser.parse_args()
    seconds = int(args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="vigbox-bench-encode-") as tmp_name:
        tmp = Path(tmp_name)
        video, audio = make_sources(tmp, seconds)
        mp4 = tmp / "recording.mp4"
        frames = seconds * 30
        finalize_s, _ = timed(lambda: ffmpeg_tool.run(
            mux_argv(video, audio, 30, mp4, moov_size=moov_reserve(frames, 30, 48_000)),
            timeout=1800, what="finalize"))
        config = parse_config({"data_dir": str(tmp / "data")})
        catalog = Catalog(config.data_path)
        app = App(config, catalog)
        import_s, rec = timed(lambda: import_file(app, mp4, case=None, actor=ACTOR))
        worker = EncodeWorker(catalog, config.encode)
        assets_s, done = timed(worker.run_one)  # finds the film without assets, makes them
        start = seconds / 2 + 0.4
        end = start + args.clip_seconds

        def clip(exact: bool) -> object:
            return media.run_now(app, media.request_clip(app, rec.id, start, end, exact=exact,
                                                         actor=ACTOR))

        fast_s, _ = timed(lambda: clip(False))
        exact_s, _ = timed(lambda: clip(True))
        still_s, _ = timed(lambda: media.run_now(app, media.request_still(app, rec.id, start,
                                                                         actor=ACTOR)))
        baseline = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(rec.path), "-ss",
                    f"{start:.6f}", "-t", f"{args.clip_seconds:.6f}", "-c:v", "libx264",
                    "-preset", config.encode.preset, "-crf", str(config.encode.crf),
                    "-c:a", "aac", str(tmp / "baseline.mp4")]
        baseline_s, _ = timed(lambda: subprocess.run(baseline, check=True))
        catalog.close()
    length = args.clip_seconds
    print(json.dumps({
        "recording": f"{args.minutes:g} min 1280x720 30 fps, 6 Mbit/s, keyframe every 1 s",
        "finalize_remux_s": round(finalize_s, 2),
        "import_remux_s": round(import_s, 2),
        "assets_s": round(assets_s, 2), "assets_status": getattr(done, "status", None),
        "clip_seconds": length,
        "fast_clip_s": round(fast_s, 2), "fast_clip_fraction": round(fast_s / length, 3),
        "exact_clip_s": round(exact_s, 2), "exact_clip_fraction": round(exact_s / length, 3),
        "still_s": round(still_s, 2),
        "baseline_full_reencode_exact_clip_s": round(baseline_s, 2),
        "exact_vs_baseline_ratio": round(exact_s / baseline_s, 3),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
