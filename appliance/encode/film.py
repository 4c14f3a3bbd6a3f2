"""Review films: chosen clips joined in order into one MP4, with optional title cards.

Every part is brought to one format (the first clip's size, its frame rate,
yuv420p, 48 kHz mono) and joined with ffmpeg's concat filter in a single encode;
clips are a few seconds each, so a clean re-encode is cheap and never trips over
mismatched streams. Title cards are text on black with silence, drawn with a
font from a system package.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from appliance.catalog import Catalog, Clip, Job, JobKind, MediaStatus
from appliance.config import EncodeConfig
from appliance.encode.argv import GLOBAL, progress_args
from appliance.encode.progress import run_with_progress
from appliance.encode.runner import run_job
from appliance.errors import EncodeError, InputError
from appliance.fsutil import publish
from appliance.probe import probe

TITLE_S = 3.0
MAX_CLIPS = 20
TITLE_WIDTH = 30      # characters a line at fontsize h/14 on any 16:9 or 4:3 picture
TITLE_LINES = 6


def title_text(raw: str) -> str:
    """A title card's text: wrapped to lines that fit the picture, never cut mid-word; a
    text longer than the card holds ends its last line with an ellipsis."""
    words = " ".join(str(raw).split())
    lines = textwrap.wrap(words, TITLE_WIDTH, break_long_words=True, break_on_hyphens=False)
    if len(lines) > TITLE_LINES:
        last = textwrap.shorten(" ".join(lines[TITLE_LINES - 1:]), TITLE_WIDTH,
                                placeholder=" …")
        lines = lines[:TITLE_LINES - 1] + [last]
    return "\n".join(lines)


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
                          f"textfile={_escape(str(part.title_file))}:expansion=none:"
                          f"fontcolor=white:fontsize=h/14:line_spacing={height // 40}:"
                          f"x=(w-text_w)/2:y=(h-text_h)/2,"
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
    """Renders review film jobs from ready clips."""

    def __init__(self, catalog: Catalog, config: EncodeConfig) -> None:
        self.catalog = catalog
        self.config = config

    def run(self, job: Job) -> Job:
        """Render a claimed film job; ends done, failed or cancelled."""
        return run_job(self.catalog, job, self._render)

    def _parts(self, job: Job, clips: list[Clip], texts: list[Path]) -> list[Part]:
        parts: list[Part] = []
        for number, clip in enumerate(clips, 1):
            assert clip.path is not None
            info = probe(clip.path)
            if job.params["titles"]:
                given = (job.params.get("title_texts") or [None] * len(clips))[number - 1]
                title = (given or clip.moment_tag or clip.moment_note or clip.caption
                         or f"Moment {number}")
                text = self.catalog.layout.films_dir / f".{job.subject}.title{number}.txt"
                text.write_text(title_text(title), encoding="utf-8")
                texts.append(text)
                parts.append(Part(None, text, TITLE_S))
            parts.append(Part(clip.path, None, info.duration_s, info.has_audio))
        return parts

    def _render(self, job: Job) -> None:
        clips = [ready_clip(self.catalog, c) for c in job.params["clip_ids"]]
        out = self.catalog.layout.film_file(str(job.subject))
        out.parent.mkdir(parents=True, exist_ok=True)
        texts: list[Path] = []
        tmp = out.with_name(f".{out.name}.tmp")
        # A dead runner's leftover: ffmpeg -y would truncate (and share) its inode.
        tmp.unlink(missing_ok=True)
        try:
            parts = self._parts(job, clips, texts)
            assert clips[0].path is not None
            video = probe(clips[0].path).video
            if video is None:
                raise EncodeError(f"clip {clips[0].id} has no picture")
            fps = round(float(video.fps)) or 30
            font = Path(self.config.font)
            if job.params["titles"] and not font.exists():
                raise EncodeError(f"the title font {font} is missing; install fonts-dejavu-core")
            total = sum(p.duration_s for p in parts)
            argv = film_argv(parts, tmp, width=video.width, height=video.height, fps=fps,
                             font=font, crf=self.config.crf, preset=self.config.preset)
            run_with_progress(progress_args(argv),
                              duration_s=total, what=f"review film {job.subject}",
                              on_progress=lambda f: self.catalog.jobs.progress(job.id, f),
                              should_cancel=lambda: self.catalog.jobs.cancel_requested(job.id),
                              nice=self.config.nice)
            publish(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            for text in texts:
                text.unlink(missing_ok=True)
        duration = probe(out).duration_s or total
        result = {"id": job.subject, "path": str(out), "duration_s": round(duration, 3),
                  "clip_ids": job.params["clip_ids"], "titles": bool(job.params["titles"])}
        self.catalog.media.finish(job.id, JobKind.FILM, str(job.subject),
                                  {"path": out, "duration_s": duration}, result)


def ready_clip(catalog: Catalog, clip_id: str) -> Clip:
    """A clip that can go into a film; NotFoundError or InputError if it cannot."""
    clip = catalog.media.clip(clip_id)
    if clip.status != MediaStatus.READY or clip.path is None:
        raise InputError(f"clip {clip_id} is {clip.status}, not ready")
    if not clip.path.exists():
        raise InputError(f"the file of clip {clip_id} is missing")
    return clip
