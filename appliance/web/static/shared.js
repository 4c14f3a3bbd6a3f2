// Shared review: the chosen clips and stills one after another, calm and large.
// Exact stepping as in Review: frame n shown by seeking to its middle.
"use strict";
(function () {
  const {say, el} = window.vig;
  const $ = (id) => document.getElementById(id);
  const code = $("shared").dataset.case;
  const video = $("clip"), still = $("still");
  const FPS = 30;   // clips keep their film's rate; stepping uses the video's own when known
  let items = [], index = 0, n = 0;

  function fps() { return (video.dataset.fps && parseFloat(video.dataset.fps)) || FPS; }

  function show(i) {
    if (!items.length) { $("empty").hidden = false; return; }
    index = Math.max(0, Math.min(items.length - 1, i));
    const item = items[index];
    video.pause();
    $("position").textContent = (index + 1) + " of " + items.length;
    $("caption").textContent = item.caption || "";
    if (item.kind === "clip") {
      still.hidden = true;
      video.hidden = false;
      video.src = item.url;
      n = 0;
    } else {
      video.hidden = true;
      video.removeAttribute("src");
      still.hidden = false;
      still.src = item.url;
    }
    $("shared").dataset.item = String(index);
    $("play").disabled = item.kind !== "clip";
  }

  function seekFrame(frame) {
    if (items[index].kind !== "clip") return;
    video.pause();
    const last = Math.max(0, Math.floor((video.duration || 0) * fps()) - 1);
    n = Math.max(0, Math.min(last, frame));
    const asked = n;
    return new Promise((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        resolve();
        // Never say a frame is shown before it is: a slow seek says so when it lands,
        // unless another frame has been asked for meanwhile.
        const shown = () => { if (n === asked) $("shared").dataset.shownFrame = String(n); };
        if (!video.seeking) shown();
        else video.addEventListener("seeked", shown, {once: true});
      };
      video.addEventListener("seeked", () => setTimeout(finish, 50), {once: true});
      setTimeout(finish, 1500);
      video.currentTime = (n + 0.5) / fps();
    });
  }

  // Slowed sound is off unless asked for (WebKit unmutes when playing starts: re-applied).
  function applyMute() { video.muted = video.playbackRate < 1 && !$("slow-sound").checked; }

  function setSpeed(rate) {
    video.playbackRate = rate;
    applyMute();
    if ("preservesPitch" in video) video.preservesPitch = true;
    for (const b of document.querySelectorAll("[data-speed]")) {
      b.setAttribute("aria-pressed", String(parseFloat(b.dataset.speed) === rate));
    }
  }

  async function load() {
    try {
      const r = await fetch("/shared/" + encodeURIComponent(code) + "/items", {cache: "no-store"});
      items = (await r.json()).items || [];
      show(0);
    } catch (e) { say("could not load the review: " + e.message, "error"); }
  }

  $("prev").addEventListener("click", () => show(index - 1));
  $("next").addEventListener("click", () => show(index + 1));
  $("play").addEventListener("click", () => {
    if (video.paused) video.play().catch((e) => say(e.message, "error")); else video.pause();
  });
  video.addEventListener("play", () => { $("play").textContent = "Pause"; applyMute(); });
  video.addEventListener("playing", applyMute);
  video.addEventListener("volumechange", () => { if (!video.paused && !video.muted) applyMute(); });
  video.addEventListener("pause", () => {
    $("play").textContent = "Play";
    n = Math.floor(video.currentTime * fps() + 1e-6);   // freeze on the frame showing
  });
  video.addEventListener("ended", () => { $("play").textContent = "Play"; });
  for (const b of document.querySelectorAll("[data-step]")) {
    b.addEventListener("click", () => seekFrame(n + parseInt(b.dataset.step, 10)));
  }
  for (const b of document.querySelectorAll("[data-speed]")) {
    b.addEventListener("click", () => setSpeed(parseFloat(b.dataset.speed)));
  }
  $("slow-sound").addEventListener("change", () => setSpeed(video.playbackRate));
  window.vigShared = {show, seekFrame, state: () => ({index, n, items: items.length})};
  load();
})();
