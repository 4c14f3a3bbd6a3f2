// Review: watch a film frame by frame, mark in/out, tag moments, render clips and stills.
//
// Exact stepping: the frame number n is the page's own state; frame n is shown by
// seeking to the middle of the frame, (n + 0.5) / fps (seeking to n / fps can land on
// the frame before). requestVideoFrameCallback is registered before the seek and raced
// with `seeked` and a timeout, so a step resolves once the frame is on screen.
"use strict";
(function () {
  const {api, say, clock, timecode, el, newest} = window.vig;
  const $ = (id) => document.getElementById(id);
  const root = $("review");
  const recId = root.dataset.recId;
  const video = $("video");
  let fps = parseFloat(root.dataset.fps) || 0;
  let frames = parseInt(root.dataset.frames, 10) || 0;
  let n = 0;                       // the frame on screen (while paused)
  let inFrame = null, outFrame = null;
  let rec = null;                  // the recording as the API gives it
  let stepping = Promise.resolve();
  const hasRvfc = video && "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  const SLOW_SEEK_MS = 1500;

  function lastFrame() {
    const byDuration = video && isFinite(video.duration) ? Math.floor(video.duration * fps) : 0;
    return Math.max(0, (frames || byDuration) - 1);
  }

  function frameAtTime(t) { return Math.max(0, Math.floor(t * fps + 1e-6)); }

  function seekTo(frame) {
    // Resolves true once frame `frame` is presented, false if that took longer than a
    // bounded wait (a busy box): the next step need not wait for a slow seek.
    return new Promise((resolve) => {
      let done = false;
      const finish = (presented) => { if (!done) { done = true; resolve(presented); } };
      if (hasRvfc) {
        // A callback for the picture still on screen (WebKit may give one before the
        // seek lands) is not the frame asked for: wait for the next.
        const onFrame = (now, meta) => {
          if (Math.floor(meta.mediaTime * fps + 1e-3) === frame) finish(true);
          else if (!done) video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
      }
      video.addEventListener("seeked", () => {
        // `seeked` may come before the frame is painted: give rVFC a moment to win.
        if (hasRvfc) setTimeout(() => finish(true), 50); else finish(true);
      }, {once: true});
      setTimeout(() => finish(false), SLOW_SEEK_MS);
      video.currentTime = (frame + 0.5) / fps;
    });
  }

  function showFrame(frame) {
    if (!fps) return Promise.resolve();
    frame = Math.min(lastFrame(), Math.max(0, frame));
    stepping = stepping.then(async () => {
      if (!video.paused) video.pause();
      n = frame;
      updateReadout();
      if (await seekTo(frame) || !video.seeking) {
        root.dataset.shownFrame = String(n);
      } else {
        // Never say a frame is shown before it is: say so when the slow seek lands,
        // unless another step has been asked for meanwhile.
        video.addEventListener("seeked", () => {
          if (n === frame && !video.seeking) root.dataset.shownFrame = String(n);
        }, {once: true});
      }
      updateReadout();
    });
    return stepping;
  }

  function step(delta) { return showFrame(n + delta); }

  function updateReadout() {
    const t = video.paused ? n / fps : video.currentTime;
    const f = video.paused ? n : frameAtTime(video.currentTime);
    $("timecode").textContent = timecode(t);
    $("frame").textContent = String(f);
    const duration = video.duration || (frames / fps) || 1;
    $("playhead").style.left = (100 * Math.min(1, t / duration)) + "%";
  }

  function togglePlay() {
    if (video.paused) {
      stepping = stepping.then(() => video.play()).catch((e) => say(e.message, "error"));
    } else {
      video.pause();
    }
  }

  function onPause() {
    // Settle on the frame that was showing, at its middle, so the next step is exact.
    showFrame(frameAtTime(video.currentTime));
    $("play").textContent = "Play";
  }

  function setSpeed(rate) {
    video.playbackRate = rate;
    // Slowed sound is harsh (Safari especially): slow motion is silent.
    video.muted = rate < 1;
    if ("preservesPitch" in video) video.preservesPitch = true;
    for (const b of document.querySelectorAll("[data-speed]")) {
      b.setAttribute("aria-pressed", String(parseFloat(b.dataset.speed) === rate));
    }
  }

  // -- timeline: sprite thumbnails, waveform, moments, in/out span -----------------------

  function parseVtt(text) {
    const cues = [];
    const blocks = text.split(/\n\n+/);
    for (const b of blocks) {
      const m = b.match(/([\d:.]+) --> ([\d:.]+)\s*\n\S*#xywh=(\d+),(\d+),(\d+),(\d+)/);
      if (!m) continue;
      const secs = (s) => s.split(":").reduce((a, p) => a * 60 + parseFloat(p), 0);
      cues.push({start: secs(m[1]), end: secs(m[2]), x: +m[3], y: +m[4], w: +m[5], h: +m[6]});
    }
    return cues;
  }

  let cues = [];
  let sprite = null;
  let peaks = null;

  function duration() { return video.duration || (frames / fps) || 1; }

  function drawThumbs() {
    const canvas = $("thumbs");
    const width = canvas.clientWidth;
    canvas.width = width * (window.devicePixelRatio || 1);
    const ctx = canvas.getContext("2d");
    ctx.scale(window.devicePixelRatio || 1, window.devicePixelRatio || 1);
    ctx.clearRect(0, 0, width, canvas.height);
    if (!sprite || !cues.length) return;
    const h = 54;
    for (const c of cues) {
      const x0 = width * c.start / duration(), x1 = width * c.end / duration();
      const w = Math.max(1, x1 - x0);
      // Keep each tile's aspect: crop the middle of the tile into the slot.
      const srcW = Math.min(c.w, c.h * w / h);
      ctx.drawImage(sprite, c.x + (c.w - srcW) / 2, c.y, srcW, c.h, x0, 0, w, h);
    }
  }

  function drawWave() {
    const canvas = $("wave");
    const width = canvas.clientWidth;
    canvas.width = width;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, canvas.height);
    if (!peaks || !peaks.peaks.length) return;
    const mid = canvas.height / 2;
    ctx.fillStyle = "#5b8a8c";
    const per = peaks.peaks.length / width;
    for (let x = 0; x < width; x++) {
      let lo = 0, hi = 0;
      const from = Math.floor(x * per), to = Math.max(from + 1, Math.floor((x + 1) * per));
      for (let i = from; i < to && i < peaks.peaks.length; i++) {
        lo = Math.min(lo, peaks.peaks[i][0]);
        hi = Math.max(hi, peaks.peaks[i][1]);
      }
      ctx.fillRect(x, mid - hi * mid, 1, Math.max(1, (hi - lo) * mid));
    }
  }

  function drawMarks() {
    const box = $("marks");
    box.replaceChildren();
    if (!rec) return;
    for (const m of rec.moments) {
      const mark = el("button", {type: "button", class: "mark-pin" + (m.tag ? " tagged" : ""),
                                 title: (m.tag || "moment") + " at " + clock(m.at_s),
                                 onclick: () => showFrame(frameAtTime(m.at_s))});
      mark.style.left = (100 * m.at_s / duration()) + "%";
      if (m.end_s) {  // a span marked in review shows its length, not just its start
        mark.classList.add("span-pin");
        mark.style.marginLeft = "0";
        mark.style.width = Math.max(0.5, 100 * (m.end_s - m.at_s) / duration()) + "%";
      }
      box.append(mark);
    }
    const span = $("span");
    if (inFrame !== null) {
      const a = inFrame / fps, b = outFrame !== null ? (outFrame + 1) / fps : a + 1 / fps;
      span.style.left = (100 * a / duration()) + "%";
      span.style.width = (100 * Math.max(0, b - a) / duration()) + "%";
      span.hidden = false;
    } else {
      span.hidden = true;
    }
  }

  function drawTimeline() { drawThumbs(); drawWave(); drawMarks(); updateReadout(); }

  function timelineTime(event) {
    const rect = $("timeline").getBoundingClientRect();
    const x = Math.min(rect.width, Math.max(0, event.clientX - rect.left));
    return duration() * x / rect.width;
  }

  function cueAt(t) { return cues.find((c) => t >= c.start && t < c.end) || cues[cues.length - 1]; }

  function scrubPreview(event) {
    const thumb = $("scrub-thumb");
    if (!sprite || !cues.length) return;
    const c = cueAt(timelineTime(event));
    thumb.hidden = false;
    thumb.src = rec.assets.sprite;
    thumb.style.objectPosition = "-" + c.x + "px -" + c.y + "px";
    thumb.style.width = c.w + "px";
    thumb.style.height = c.h + "px";
    const rect = $("timeline").getBoundingClientRect();
    thumb.style.left = Math.min(rect.width - c.w, Math.max(0, event.clientX - rect.left - c.w / 2)) + "px";
  }

  function wireTimeline() {
    const line = $("timeline");
    let dragging = false;
    line.addEventListener("pointerdown", (e) => { dragging = true; line.setPointerCapture(e.pointerId); scrubPreview(e); });
    line.addEventListener("pointermove", (e) => { if (dragging) scrubPreview(e); });
    // Seek on release: a scrub shows thumbnails, not a storm of seeks.
    line.addEventListener("pointerup", (e) => {
      dragging = false;
      $("scrub-thumb").hidden = true;
      showFrame(frameAtTime(timelineTime(e)));
    });
    line.addEventListener("pointercancel", () => { dragging = false; $("scrub-thumb").hidden = true; });
    window.addEventListener("resize", drawTimeline);
  }

  async function loadAssets() {
    const a = rec.assets;
    if (a.thumbs && a.sprite) {
      try {
        cues = parseVtt(await (await fetch(a.thumbs, {cache: "no-store"})).text());
        sprite = new Image();
        sprite.onload = drawThumbs;
        sprite.src = a.sprite;
      } catch (e) { cues = []; }
    }
    if (a.waveform) {
      try { peaks = await (await fetch(a.waveform, {cache: "no-store"})).json(); drawWave(); }
      catch (e) { peaks = null; }
    }
    if (a.status !== "ready") setTimeout(refresh, 3000);
  }

  window.vigReview = {showFrame, step, state: () => ({n, fps, inFrame, outFrame})};
  window.vigReviewParts = {root, recId, $, updateReadout, drawMarks, loadAssets, wireTimeline,
                           frameAtTime, togglePlay, onPause, setSpeed, drawTimeline,
                           get rec() { return rec; }, set rec(r) { rec = r; },
                           get fps() { return fps; }, set fps(v) { fps = v; },
                           get frames() { return frames; }, set frames(v) { frames = v; },
                           get n() { return n; },
                           get inFrame() { return inFrame; }, set inFrame(v) { inFrame = v; },
                           get outFrame() { return outFrame; }, set outFrame(v) { outFrame = v; },
                           video, api, say, clock, timecode, el};

  const ask = newest();   // an older answer that arrives late must not undo a newer one
  async function refresh() {
    const current = ask();
    try {
      const answer = await api("GET", "/api/recordings/" + encodeURIComponent(recId));
      if (!current()) return;
      rec = answer;
      if (rec.fps) fps = rec.fps;
      if (rec.video_frames) frames = rec.video_frames;
      window.vigReviewTools.render(rec);
      if (video) { drawMarks(); if (!sprite) loadAssets(); }
    } catch (e) { say(e.message, "error"); }
  }
  window.vigReviewParts.refresh = refresh;

  const when = $("rec-time");
  if (when) when.textContent = window.vig.localTime(when.getAttribute("datetime"));

  if (video) {
    const ready = () => { drawTimeline(); showFrame(0); };
    // The film's metadata may have arrived before this (deferred) script ran: then the
    // event has already fired and will not again.
    if (video.readyState >= HTMLMediaElement.HAVE_METADATA) ready();
    else video.addEventListener("loadedmetadata", ready, {once: true});
    video.addEventListener("play", () => { $("play").textContent = "Pause"; });
    video.addEventListener("pause", onPause);
    video.addEventListener("timeupdate", () => { if (!video.paused) updateReadout(); });
    if (hasRvfc) {
      const onFrame = () => { if (!video.paused) updateReadout(); video.requestVideoFrameCallback(onFrame); };
      video.requestVideoFrameCallback(onFrame);
    }
    $("play").addEventListener("click", togglePlay);
    for (const b of document.querySelectorAll("[data-step-frames]")) {
      b.addEventListener("click", () => step(parseInt(b.dataset.stepFrames, 10)));
    }
    for (const b of document.querySelectorAll("[data-step-s]")) {
      b.addEventListener("click", () => step(Math.round(parseFloat(b.dataset.stepS) * fps)));
    }
    for (const b of document.querySelectorAll("[data-speed]")) {
      b.addEventListener("click", () => setSpeed(parseFloat(b.dataset.speed)));
    }
    wireTimeline();
  }
  // review_tools.js (loaded next) draws the tools and calls refresh() first.
})();
