// Filming the shared review (for supervision): start/stop the box's camera on this
// review, and while it films, tell the box what is shown, played, paused, slowed or
// stepped, so each is stored at its time in the review's recording.
"use strict";
(function () {
  const {api, say} = window.vig;
  const $ = (id) => document.getElementById(id);
  const root = $("shared");
  const code = root.dataset.case;
  const base = "/shared/" + encodeURIComponent(code);
  let filming = false;

  function show() {
    $("film-review").textContent = filming ? "Stop filming" : "Film this review (for supervision)";
    $("film-review").classList.toggle("recording", filming);
    $("film-state").textContent = filming ? "● filming" : "";
  }

  // One event at a time: each is stored at the moment the box hears it, so two sent at
  // once (a step, then a speed) could be stored the wrong way round.
  let sending = Promise.resolve();
  function send(event, extra) {
    if (!filming) return;
    const body = Object.assign({event}, extra || {});
    sending = sending.then(() => api("POST", base + "/events", body)).catch(() => {});
  }

  async function toggle() {
    $("film-review").disabled = true;
    try {
      if (filming) {
        say("Saving the film of the review…");
        await api("POST", base + "/film/stop", {});
        filming = false;
        say("The review's film is saved.");
      } else {
        await api("POST", base + "/film/start", {});
        filming = true;
        send("shown", {item: parseInt(root.dataset.item || "0", 10)});
      }
    } catch (e) { say(e.message, "error"); }
    $("film-review").disabled = false;
    show();
  }

  // Which item is shown: shared.js keeps it in data-item.
  new MutationObserver(() => send("shown", {item: parseInt(root.dataset.item || "0", 10)}))
    .observe(root, {attributes: true, attributeFilter: ["data-item"]});
  $("clip").addEventListener("play", () => send("play"));
  $("clip").addEventListener("pause", () => send("pause"));
  for (const b of document.querySelectorAll("[data-speed]")) {
    b.addEventListener("click", () => send("speed", {detail: b.dataset.speed}));
  }
  for (const b of document.querySelectorAll("[data-step]")) {
    b.addEventListener("click", () => send("step", {detail: b.dataset.step}));
  }
  $("film-review").addEventListener("click", toggle);
  show();
})();
