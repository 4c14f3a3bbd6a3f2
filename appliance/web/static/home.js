// Home: record / stop / mark, the live view, the case being filmed, recent recordings.
"use strict";
(function () {
  const {api, say, clock, localTime, el, newest} = window.vig;
  const $ = (id) => document.getElementById(id);
  const STATES = {
    ready: ["Ready", "Press Record (or the box's button) to start filming."],
    recording: ["Recording", "Mark good moments as they happen."],
    finalizing: ["Saving the film", "Wait: do not unplug the box."],
    starting: ["Starting", "The box is finishing an earlier recording."],
    error: ["Something failed", ""],
    offline: ["The recorder is not running", ""],
    shutting_down: ["Shutting down", "Unplug once the Pi's green light has stopped."],
  };
  let state = null;
  let busy = false;
  let ended = false;   // every session ended (the clock was set): nothing here works
  const LOGGED_OUT = "Log in again to record.";

  function show(status) {
    state = status.state;
    const [title, detail] = STATES[state] || [state, ""];
    $("state").textContent = title;
    $("state-detail").textContent = ended ? LOGGED_OUT : detail;
    $("light").className = "light light-" + (status.light || state);
    const problem = status.last_error || "";
    $("problem").hidden = !problem || state === "recording";
    $("problem").textContent = problem;
    const rec = status.recording;
    const recording = state === "recording";
    const button = $("record");
    button.disabled = ended || busy || !(state === "ready" || recording || state === "error");
    button.classList.toggle("stop", recording);
    $("record-label").textContent = recording ? "Stop" : "Record";
    $("mark").hidden = !recording;
    // Whole seconds, so recorded + left always add up to the limit.
    const elapsed = Math.floor(rec ? rec.elapsed_s : 0);
    $("elapsed").textContent = clock(elapsed);
    $("remaining").textContent = clock((status.max_seconds || 600) - elapsed);
    $("free").textContent = Math.floor(status.free_minutes);
    $("case").disabled = ended || recording;
    $("virtual-button").hidden = !status.simulated_button;
    if (status.case !== undefined && document.activeElement !== $("case")) {
      $("case").value = status.case || "";
    }
  }

  async function poll() {
    if (document.body.dataset.loggedOut) return;   // the clock was set: sessions ended
    try {
      show(await api("GET", "/api/status", undefined, {poll: true}));
    } catch (e) {
      if (ended) return;   // a 401 that raced the clock set: Home already says why
      show({state: "error", last_error: e.message});
    }
  }

  const ask = newest();   // an older list that arrives late must not replace a newer one
  async function recordings() {
    if (document.body.dataset.loggedOut) return;
    const current = ask();
    try {
      const list = await api("GET", "/api/recordings", undefined, {poll: true});
      if (!current() || ended) return;
      const ul = $("recordings");
      ul.replaceChildren();
      for (const r of list.slice(0, 8)) {
        const when = localTime(r.started_at);
        const len = r.duration_s ? clock(r.duration_s) : "";
        const label = [when, r.case || "no case", r.kind === "review" ? "shared review" : "",
                       len].filter(Boolean).join(" · ");
        ul.append(el("li", {}, [
          r.media_url ? el("a", {href: r.review_url, class: "rec-link", text: label})
                      : el("span", {text: label}),
          el("span", {class: "status status-" + r.status, text: r.status}),
          // What went wrong with a recording, in the box's words (e.g. seconds lost).
          r.problems && r.problems.length ? el("span", {class: "problem", text: r.problems.join("; ")}) : "",
        ]));
      }
      if (!list.length) ul.append(el("li", {class: "muted", text: "Nothing recorded yet."}));
    } catch (e) { /* the status line already says what is wrong */ }
  }

  async function press() {
    busy = true;
    $("record").disabled = true;
    try {
      if (state === "recording") {
        say("Saving the film…");
        await api("POST", "/api/record/stop", {});
        say("Saved.");
        recordings();
      } else {
        await api("POST", "/api/record/start", {case: $("case").value || null});
        say("Recording.");
      }
    } catch (e) {
      say(e.message, "error");
    } finally {
      busy = false;
      poll();
    }
  }

  async function mark() {
    try {
      const r = await api("POST", "/api/record/mark", {});
      say("Moment marked at " + clock(r.moment.at_s) + ".");
    } catch (e) { say(e.message, "error"); }
  }

  // The simulated box's button (the demo): presses and holds go through the box's own
  // gesture code, as a finger on a real button would.
  async function pressButton(event) {
    const hold = Number(event.currentTarget.dataset.hold);
    try {
      await api("POST", "/api/record/press", {hold_s: hold});
      say(hold < 1 ? "Button pressed." : "Button held " + Math.floor(hold) + " s.");
    } catch (e) { say(e.message, "error"); }
  }

  async function chooseCase() {
    try {
      await api("POST", "/api/record/case", {case: $("case").value || null});
    } catch (e) { say(e.message, "error"); }
  }

  // The live view: one picture at a time, the next asked for when this one has arrived.
  // The box makes a few pictures a second; one it sent already is not shown again, and
  // one that stops changing is said to have stopped rather than passed off as live.
  const img = $("live");
  let lastUrl = null;
  let lastTaken = null;
  let lastNewAt = 0;
  let failures = 0;
  const STALLED_MS = 3000;

  function noPicture(message) {
    // A frozen last picture would look live: show none while there is no live one.
    img.removeAttribute("src");
    if (lastUrl) { URL.revokeObjectURL(lastUrl); lastUrl = null; }
    $("live-note").hidden = false;
    $("live-note").textContent = message;
  }

  async function nextFrame() {
    if (ended) return;
    if (document.hidden) { setTimeout(nextFrame, 1000); return; }
    try {
      const r = await fetch("/api/live.jpg", {cache: "no-store", headers: {"X-Vigbox-Poll": "1"}});
      if (ended) return;
      if (!r.ok) throw new Error((await r.json()).error || "no picture");
      const taken = r.headers.get("X-Frame-Time-Ns");
      failures = 0;
      if (taken && taken === lastTaken) {
        if (Date.now() - lastNewAt > STALLED_MS) noPicture("The live picture has stopped.");
        setTimeout(nextFrame, 100);
        return;
      }
      const blob = await r.blob();
      if (ended) return;
      const url = URL.createObjectURL(blob);
      img.src = url;
      if (lastUrl) URL.revokeObjectURL(lastUrl);
      lastUrl = url;
      lastTaken = taken;
      lastNewAt = Date.now();
      $("live-note").hidden = true;
      setTimeout(nextFrame, 200);
    } catch (e) {
      // An answer (a 401) read after every session ended must not replace saying why.
      if (ended) return;
      failures += 1;
      noPicture("No live picture: " + e.message);
      setTimeout(nextFrame, Math.min(5000, 500 * failures));
    }
  }

  // The clock was set and every session ended (clock.js): nothing here works until the
  // guider logs in again, so nothing here may look as if it would.
  document.addEventListener("vig:logged-out", () => {
    ended = true;
    $("state-detail").textContent = LOGGED_OUT;
    for (const c of document.querySelectorAll(".home button, .home select")) c.disabled = true;
    noPicture("Log in again to see the live picture.");
  });

  $("record").addEventListener("click", press);
  $("mark").addEventListener("click", mark);
  $("case").addEventListener("change", chooseCase);
  for (const b of $("virtual-button").querySelectorAll("button")) {
    b.addEventListener("click", pressButton);
  }
  poll();
  recordings();
  setInterval(poll, 1000);
  setInterval(recordings, 10000);
  nextFrame();
})();
