"""Review films: chosen clips joined in order into one MP4, with optional title cards.

Every part is brought to one format (the first clip's size, its frame rate,
yuv420p, 48 kHz mono) and joined with ffmpeg's concat filter in a single encode;
clips are a few seconds each, so a clean re-encode is cheap and never trips over
mismatched streams. Title cards are text on black with silence, drawn with a
font from a system package.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import ffmpeg_tool
from appliance.catalog import Catalog, utc_now
from appliance.config import EncodeConfig
from appliance.encode.argv import GLOBAL, progress_args
from appliance.encode.jobs import Job, JobQueue, run_job
from appliance.encode.progress import run_with_progress
from appliance.errors import EncodeError, InputError, NotFoundError
from appliance.fsutil import publish

TITLE_S = 2.0
MAX_CLIPS = 20


@dataclass(frozen=True)
class Part:
    """One piece of the film: a clip file, or a title card (its text in a file)."""

    clip: Path | None
    title_file: Path | None
    duration_s: float
    has_audio: bool = True


def film_argv(parts: list[Part], out: Path, *, width: int, height: int, fps: int,
              font: Path, crf: int, preset: str) -> list[str]:
    """ffmpeg argv joining `parts` (clips and title cards) into one faststart MP4."""
    inputs: list[str] = []
    chains: list[str] = []
    joined = ""
    fit = (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
           f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p")
    sound = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=mono"
    n = 0
    for i, part in enumerate(parts):
        if part.clip is not None:
            inputs += ["-i", str(part.clip)]
            v = n
            n += 1
            chains.append(f"[{v}:v:0]{fit}[v{i}]")
            if part.has_audio:
                chains.append(f"[{v}:a:0]{sound}[a{i}]")
            else:
                inputs += ["-f", "lavfi", "-t", f"{part.duration_s:.3f}", "-i",
                           "anullsrc=r=48000:cl=mono"]
                chains.append(f"[{n}:a]{sound}[a{i}]")
                n += 1
        else:
            inputs += ["-f", "lavfi", "-t", f"{TITLE_S:.3f}", "-i",
                       f"color=c=black:s={width}x{height}:r={fps}"]
            # A text file, not inline text: drawtext's escaping rules are a trap.
            chains.append(f"[{n}:v]drawtext=fontfile={_escape(str(font))}:"
                          f"textfile={_escape(str(part.title_file))}:"
                          f"fontcolor=white:fontsize=h/14:x=(w-text_w)/2:y=(h-text_h)/2,"
                          f"{fit}[v{i}]")
            n += 1
            inputs += ["-f", "lavfi", "-t", f"{TITLE_S:.3f}", "-i", "anullsrc=r=48000:cl=mono"]
            chains.append(f"[{n}:a]{sound}[a{i}]")
            n += 1
        joined += f"[v{i}][a{i}]"
    graph = ";".join(chains) + f";{joined}concat=n={len(parts)}:v=1:a=1[v][a]"
    return ["ffmpeg", *GLOBAL, *inputs, "-filter_complex", graph, "-map", "[v]", "-map",
            "[a]", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt",
            "yuv420p", "-g", str(fps), "-c:a", "aac", "-b:a", "128k", "-movflags",
            "+faststart", "-f", "mp4", str(out)]


def _escape(path: str) -> str:
    """A path as a filter option value (our own paths: only these can occur)."""
    for ch in ("\\", "'", ":", ",", ";", "[", "]"):
        path = path.replace(ch, "\\" + ch)
    return path


class FilmMaker:
    """Makes review films from ready clips, as jobs."""

    def __init__(self, catalog: Catalog, config: EncodeConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.jobs = JobQueue(catalog)

    def request(self, clip_ids: list[str], *, titles: bool) -> Job:
        """Check the clips exist and are ready, then queue the film job."""
        if not clip_ids:
            raise InputError("name at least one clip")
        if len(clip_ids) > MAX_CLIPS:
            raise InputError(f"a review film may join at most {MAX_CLIPS} clips")
        for clip_id in clip_ids:
            self._clip(clip_id)
        film_id = "film-" + secrets.token_hex(4)
        job = self.jobs.enqueue("film", film_id, {"clip_ids": clip_ids, "titles": titles})
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO films (id, clip_ids, titles, status, job_id, created_at)"
                       " VALUES (?,?,?,?,?,?)", (film_id, json.dumps(clip_ids), int(titles),
                                                 "pending", job.id, utc_now()))
        return job

    def _clip(self, clip_id: str) -> dict[str, Any]:
        with self.catalog.transaction() as db:
            row = db.execute("SELECT c.*, m.tag AS moment_tag, m.note AS moment_note FROM"
                             " clips c LEFT JOIN moments m ON m.id = c.moment_id WHERE c.id=?",
                             (clip_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no clip {clip_id!r}")
        if row["status"] != "ready" or not row["path"]:
            raise InputError(f"clip {clip_id} is {row['status']}, not ready")
        return dict(row)

    def run(self, job: Job) -> Job:
        """Render a claimed film job; ends done, failed or cancelled."""
        return run_job(self.jobs, job, self._render,
                       lambda status: self._status(job.subject, status))

    def _render(self, job: Job) -> dict[str, Any]:
        clips = [self._clip(c) for c in job.params["clip_ids"]]
        out_dir = self.catalog.data_dir / "films"
        out_dir.mkdir(exist_ok=True)
        parts: list[Part] = []
        texts: list[Path] = []
        for number, clip in enumerate(clips, 1):
            path = self.catalog.data_dir / clip["path"]
            info = ffmpeg_tool.probe(path)
            duration = float(info["format"].get("duration") or 0)
            if job.params["titles"]:
                title = (clip["moment_tag"] or clip["moment_note"] or clip["caption"]
                         or f"Moment {number}")
                text = out_dir / f".{job.subject}.title{number}.txt"
                text.write_text(" ".join(str(title).split())[:80])
                texts.append(text)
                parts.append(Part(None, text, TITLE_S))
            parts.append(Part(path, None, duration,
                              any(s.get("codec_type") == "audio" for s in info["streams"])))
        first = ffmpeg_tool.probe(self.catalog.data_dir / clips[0]["path"])
        video = next(s for s in first["streams"] if s.get("codec_type") == "video")
        num, _, den = str(video.get("avg_frame_rate", "30/1")).partition("/")
        fps = round(float(num) / float(den or 1)) if float(den or 1) else 30
        font = Path(self.config.font)
        if job.params["titles"] and not font.exists():
            raise EncodeError(f"the title font {font} is missing; install fonts-dejavu-core")
        out = out_dir / f"{job.subject}.mp4"
        tmp = out.with_name(f".{out.name}.tmp")
        total = sum(p.duration_s for p in parts)
        argv = film_argv(parts, tmp, width=int(video["width"]), height=int(video["height"]),
                         fps=fps, font=font, crf=self.config.crf, preset=self.config.preset)
        try:
            run_with_progress(progress_args(argv),
                              duration_s=total, what=f"review film {job.subject}",
                              on_progress=lambda f: self.jobs.progress(job.id, f),
                              should_cancel=lambda: self.jobs.cancel_requested(job.id),
                              nice=self.config.nice)
            publish(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            for text in texts:
                text.unlink(missing_ok=True)
        duration = float(ffmpeg_tool.probe(out)["format"].get("duration") or total)
        with self.catalog.transaction() as db:
            db.execute("UPDATE films SET status='ready', path=?, duration_s=? WHERE id=?",
                       (self.catalog.relative(out), duration, job.subject))
        return {"id": job.subject, "path": str(out), "duration_s": round(duration, 3),
                "clip_ids": job.params["clip_ids"], "titles": bool(job.params["titles"])}

    def _status(self, film_id: str | None, status: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("UPDATE films SET status=? WHERE id=?", (status, film_id))
