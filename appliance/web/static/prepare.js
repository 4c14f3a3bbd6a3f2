// Preparing a shared review: choose clips and stills of the case and put them in order.
"use strict";
(function () {
  const {api, say, timecode, el} = window.vig;
  const root = document.getElementById("prepare");
  const code = root.dataset.case;
  let chosen = [];      // [{kind, id, label, url}]

  function label(kind, item) {
    if (kind === "clip") return "Clip " + timecode(item.start_s) + "–" + timecode(item.end_s) + (item.tag ? " · " + item.tag : "");
    return "Still, frame " + item.frame;
  }

  function drawChosen() {
    const ol = document.getElementById("chosen");
    ol.replaceChildren();
    chosen.forEach((item, i) => {
      const move = (delta) => {
        const j = i + delta;
        if (j < 0 || j >= chosen.length) return;
        [chosen[i], chosen[j]] = [chosen[j], chosen[i]];
        drawChosen();
      };
      ol.append(el("li", {"data-kind": item.kind, "data-id": item.id}, [
        thumb(item.kind, item),
        el("span", {class: "item-label", text: item.label}),
        el("input", {class: "caption-input", maxlength: "200", placeholder: "Words for the parent (optional)",
                     value: item.caption || "", "aria-label": "caption",
                     oninput: (e) => { item.caption = e.target.value; }}),
        el("button", {type: "button", class: "quiet up", text: "▲", title: "Earlier", onclick: () => move(-1)}),
        el("button", {type: "button", class: "quiet down", text: "▼", title: "Later", onclick: () => move(1)}),
        el("button", {type: "button", class: "quiet", text: "Take out", onclick: () => { chosen.splice(i, 1); drawChosen(); }}),
      ]));
    });
    if (!chosen.length) ol.append(el("li", {class: "muted", text: "Nothing chosen yet: add clips and stills below."}));
    // What is already chosen cannot be added twice: say so on its button.
    for (const li of document.querySelectorAll(".choices li[data-kind]")) {
      const taken = chosen.some((c) => c.kind === li.dataset.kind && c.id === li.dataset.id);
      const add = li.querySelector("button.add");
      add.disabled = taken;
      add.textContent = taken ? "Chosen" : "Add";
    }
  }

  // A still's picture, or a mark standing for a clip (same size, so the rows line up).
  function thumb(kind, item) {
    if (kind === "still" && item.url) return el("img", {src: item.url, alt: "", class: "thumb"});
    return el("span", {class: "thumb clip-thumb", text: "▶", "aria-hidden": "true"});
  }

  // Watch a clip before choosing it, in the one preview player.
  function watch(item) {
    const player = document.getElementById("preview");
    player.hidden = false;
    player.src = item.url;
    player.play().catch(() => {});
    player.scrollIntoView({block: "nearest"});
  }

  function choice(kind, item) {
    const add = () => {
      if (chosen.some((c) => c.kind === kind && c.id === item.id)) { say("already chosen"); return; }
      chosen.push({kind, id: item.id, label: label(kind, item), url: item.url});
      drawChosen();
    };
    return el("li", {"data-kind": kind, "data-id": item.id}, [
      thumb(kind, item),
      el("span", {text: label(kind, item)}),
      kind === "clip" ? el("button", {type: "button", class: "quiet watch", text: "Watch", onclick: () => watch(item)}) : "",
      el("button", {type: "button", class: "add", text: "Add", onclick: add}),
    ]);
  }

  async function load() {
    try {
      const data = await api("GET", "/api/cases/" + encodeURIComponent(code) + "/review");
      chosen = data.items.map((i) => ({kind: i.kind, id: i.id, label: label(i.kind, i), url: i.url,
                                       caption: i.caption || ""}));
      drawChosen();
      document.getElementById("clip-choices").replaceChildren(...data.clips.map((c) => choice("clip", c)));
      document.getElementById("still-choices").replaceChildren(...data.stills.map((s) => choice("still", s)));
      drawChosen();
      if (!data.clips.length && !data.stills.length) {
        document.getElementById("clip-choices").append(el("li", {class: "muted", text: "This case has no ready clips or stills yet: make them in Review."}));
      }
    } catch (e) { say(e.message, "error"); }
  }

  async function save() {
    try {
      await api("PUT", "/api/cases/" + encodeURIComponent(code) + "/review",
                {items: chosen.map((c) => ({kind: c.kind, id: c.id, caption: c.caption || null}))});
      say("Saved.");
      return true;
    } catch (e) { say(e.message, "error"); return false; }
  }

  async function makeFilm() {
    const clips = chosen.filter((c) => c.kind === "clip");
    if (!clips.length) { say("choose at least one clip first", "error"); return; }
    const $ = (id) => document.getElementById(id);
    try {
      let job = await api("POST", "/api/films", {
        clip_ids: clips.map((c) => c.id), titles: $("film-titles").checked,
        title_texts: clips.map((c) => c.caption || null)});
      $("film-job").hidden = false;
      $("film").hidden = true;
      $("film-download").hidden = true;
      while (!["done", "failed", "cancelled"].includes(job.status)) {
        $("film-bar").value = job.progress;
        $("film-text").textContent = job.status === "queued" ? "waiting for the encoder" : Math.round(job.progress) + " %";
        await new Promise((r) => setTimeout(r, 500));
        job = await api("GET", "/api/jobs/" + job.id, undefined, {poll: true});
      }
      $("film-bar").value = job.progress;
      $("film-text").textContent = job.status === "done" ? "ready" : job.status + (job.error ? ": " + job.error : "");
      if (job.status === "done") {
        $("film").src = "/media/film/" + encodeURIComponent(job.subject);
        $("film").hidden = false;
        if (document.getElementById("prepare").dataset.downloads === "yes") {
          $("film-download").href = "/media/film/" + encodeURIComponent(job.subject) + "/download";
          $("film-download").hidden = false;
        }
      }
    } catch (e) { say(e.message, "error"); }
  }

  document.getElementById("make-film").addEventListener("click", makeFilm);
  document.getElementById("save").addEventListener("click", save);
  // Starting always shows what is on screen: save first.
  document.getElementById("start-shared").closest("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await save()) e.target.submit();
  });
  load();
})();
