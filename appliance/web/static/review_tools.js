// Review tools: in/out, tag and note, moments, clips with live progress, stills, keys.
"use strict";
(function () {
  const P = window.vigReviewParts;
  const {api, say, clock, timecode, el, $} = P;
  const watching = new Map();   // job id -> what it makes (polled until it ends)
  let tagsLoaded = false;

  function inS() { return P.inFrame / P.fps; }
  function outS() { return (P.outFrame + 1) / P.fps; }   // the out frame is included

  function setIn() {
    P.inFrame = P.n;
    if (P.outFrame !== null && P.outFrame < P.inFrame) P.outFrame = null;
    showInOut();
  }

  function setOut() {
    P.outFrame = P.n;
    if (P.inFrame === null || P.inFrame > P.outFrame) P.inFrame = Math.max(0, P.outFrame - Math.round(P.fps * 5));
    showInOut();
  }

  function showInOut() {
    $("in-at").textContent = P.inFrame === null ? "–" : timecode(inS()) + " (frame " + P.inFrame + ")";
    $("out-at").textContent = P.outFrame === null ? "–" : timecode(outS()) + " (frame " + P.outFrame + ")";
    P.drawMarks();
  }

  function needSpan() {
    if (P.inFrame === null || P.outFrame === null) throw new Error("mark in and out first");
  }

  async function saveMoment() {
    try {
      const body = {at_s: P.inFrame === null ? P.n / P.fps : inS(),
                    tag: $("tag").value || null, note: $("note").value || null};
      if (P.outFrame !== null && P.inFrame !== null) body.end_s = outS();
      await api("POST", "/api/recordings/" + P.recId + "/moments", body);
      $("note").value = "";
      say("Moment saved.");
      P.refresh();
    } catch (e) { say(e.message, "error"); }
  }

  async function makeClip(exact) {
    try {
      needSpan();
      const job = await api("POST", "/api/recordings/" + P.recId + "/clips",
                            {start_s: inS(), end_s: outS(), exact});
      watch(job, (exact ? "Exact" : "Fast") + " clip " + timecode(inS()) + "–" + timecode(outS()));
    } catch (e) { say(e.message, "error"); }
  }

  async function takeStill() {
    try {
      const job = await api("POST", "/api/recordings/" + P.recId + "/stills",
                            {at_s: (P.n + 0.5) / P.fps});
      watch(job, "Still of frame " + P.n);
    } catch (e) { say(e.message, "error"); }
  }

  function watch(job, label) {
    const bar = el("progress", {max: "100", value: "0"});
    const text = el("span", {class: "muted", text: "waiting for the encoder"});
    const cancel = el("button", {type: "button", class: "quiet", text: "Cancel",
                                 onclick: () => api("POST", "/api/jobs/" + job.id + "/cancel", {})
                                   .catch((e) => say(e.message, "error"))});
    const row = el("div", {class: "job", "data-job": String(job.id)},
                   [el("strong", {text: label}), bar, text, cancel]);
    $("jobs").append(row);
    watching.set(job.id, {row, bar, text, cancel});
  }

  let polling = false;
  async function pollJobs() {
    // One round at a time: a slow answer must not start a second round beside it.
    if (polling) return;
    polling = true;
    try { await pollRound(); } finally { polling = false; }
  }

  async function pollRound() {
    for (const [id, view] of watching) {
      try {
        const job = await api("GET", "/api/jobs/" + id, undefined, {poll: true});
        view.bar.value = job.progress;
        view.row.dataset.status = job.status;
        if (job.status === "running") view.text.textContent = Math.round(job.progress) + " %";
        if (job.status === "done" || job.status === "failed" || job.status === "cancelled") {
          watching.delete(id);
          view.cancel.hidden = true;   // nothing left to cancel
          view.text.textContent = job.status === "done" ? "ready" : job.status + (job.error ? ": " + job.error : "");
          if (job.status === "done") setTimeout(() => view.row.remove(), 4000);
          P.refresh();
        }
      } catch (e) { view.text.textContent = e.message; }
    }
  }

  async function loadTags() {
    const tags = await api("GET", "/api/tags");
    const select = $("tag");
    for (const t of tags.filter((t) => !t.retired)) select.append(el("option", {value: t.label, text: t.label}));
    tagsLoaded = true;
  }

  // A filmed shared review: what the guider did, each a jump to its time in this film.
  const EVENT_WORDS = {
    shown: (e) => (e.item_kind === "still" ? "Still " : "Clip ") + (e.detail || "") + " shown",
    play: () => "Played", pause: () => "Paused (frozen)",
    speed: (e) => "Speed " + (e.detail === "1" ? "normal" : e.detail + "×"),
    step: (e) => (e.detail && e.detail.startsWith("-") ? "One picture back" : "One picture on"),
  };
  function renderEvents(events) {
    $("events-part").hidden = !events;
    if (!events) return;
    const list = $("events");
    list.replaceChildren();
    for (const e of events) {
      list.append(el("li", {"data-event": e.event, "data-at": e.at_s}, [
        el("button", {type: "button", class: "link", text: timecode(e.at_s),
                      onclick: () => P.video && window.vigReview.showFrame(P.frameAtTime(e.at_s))}),
        el("span", {text: (EVENT_WORDS[e.event] || (() => e.event))(e)}),
      ]));
    }
    if (!events.length) list.append(el("li", {class: "muted", text: "Nothing was noted while this review was filmed."}));
  }

  function render(rec) {
    const moments = $("moments");
    moments.replaceChildren();
    for (const m of rec.moments) {
      const when = m.end_s ? timecode(m.at_s) + "–" + timecode(m.end_s) : timecode(m.at_s);
      const from = m.source === "button" ? "button mark" : m.source === "control" ? "marked on the tablet" : "";
      moments.append(el("li", {}, [
        el("button", {type: "button", class: "link", text: when,
                      onclick: () => P.video && window.vigReview.showFrame(P.frameAtTime(m.at_s))}),
        m.tag ? el("span", {class: "tag", text: m.tag}) : el("span", {class: "muted", text: from || "no tag"}),
        m.note ? el("span", {class: "note", text: m.note}) : "",
        el("button", {type: "button", class: "quiet", text: "Use",
                      title: "Set in and out from this moment",
                      onclick: () => useMoment(rec, m)}),
      ]));
    }
    renderEvents(rec.events);
    if (!rec.moments.length) moments.append(el("li", {class: "muted", text: "No moments yet. Marks made with the button during recording appear here."}));
    const clips = $("clips");
    clips.replaceChildren();
    for (const c of rec.clips) {
      const label = timecode(c.start_s) + "–" + timecode(c.end_s) + (c.exact ? " exact" : " fast");
      clips.append(el("li", {"data-status": c.status}, [
        c.url ? el("a", {href: c.url, target: "_blank", rel: "noopener", text: label}) : el("span", {text: label}),
        el("span", {class: "status status-" + c.status, text: c.status}),
        c.download_url ? el("a", {href: c.download_url, download: true, class: "button quiet small", text: "Download"}) : "",
      ]));
    }
    if (!rec.clips.length) clips.append(el("li", {class: "muted", text: "No clips yet."}));
    const stills = $("stills");
    stills.replaceChildren();
    for (const s of rec.stills) {
      stills.append(el("li", {"data-status": s.status}, [
        s.url ? el("img", {src: s.url, alt: "still at " + timecode(s.at_s), loading: "lazy"}) : el("span", {class: "muted", text: s.status}),
        el("span", {class: "muted", text: "frame " + (s.frame ?? "?")}),
        s.download_url ? el("a", {href: s.download_url, download: true, class: "button quiet small", text: "Download"}) : "",
      ]));
    }
    if (!rec.stills.length) stills.append(el("li", {class: "muted", text: "No stills yet."}));
  }

  function useMoment(rec, m) {
    const sug = rec.suggestions.find((s) => s.moment_id === m.id);
    const start = m.end_s ? m.at_s : (sug ? sug.start_s : m.at_s);
    const end = m.end_s ? m.end_s : (sug ? sug.end_s : m.at_s + 2);
    P.inFrame = P.frameAtTime(start);
    P.outFrame = Math.max(P.inFrame, Math.ceil(end * P.fps - 1e-6) - 1);
    if (m.tag) $("tag").value = m.tag;
    showInOut();
    window.vigReview.showFrame(P.inFrame);
  }

  async function assignCase() {
    try {
      await api("POST", "/api/recordings/" + P.recId + "/case", {case: $("rec-case").value || null});
      say("Case saved.");
    } catch (e) { say(e.message, "error"); P.refresh(); }
  }

  function onKey(e) {
    const target = e.target instanceof Element ? e.target : null;
    if ((target && target.closest("input, textarea, select")) || e.metaKey || e.ctrlKey || e.altKey) return;
    const actions = {
      " ": () => P.togglePlay(), ",": () => window.vigReview.step(-1), ".": () => window.vigReview.step(1),
      "ArrowLeft": () => window.vigReview.step(-Math.round(P.fps)),
      "ArrowRight": () => window.vigReview.step(Math.round(P.fps)), "i": setIn, "o": setOut,
    };
    const action = actions[e.key];
    if (action && P.video) { e.preventDefault(); action(); }
  }

  window.vigReviewTools = {render};
  $("mark-in").addEventListener("click", setIn);
  $("mark-out").addEventListener("click", setOut);
  $("save-moment").addEventListener("click", saveMoment);
  $("clip-exact").addEventListener("click", () => makeClip(true));
  $("clip-fast").addEventListener("click", () => makeClip(false));
  $("take-still").addEventListener("click", takeStill);
  $("rec-case").addEventListener("change", assignCase);
  document.addEventListener("keydown", onKey);
  setInterval(pollJobs, 500);
  loadTags().catch((e) => say(e.message, "error")).then(() => P.refresh());
  showInOut();
})();
