// Sync: the office destination's state, "Sync now", the files on their way, done, dropped.
"use strict";
(function () {
  const {api, say, el, localTime} = window.vig;
  const $ = (id) => document.getElementById(id);
  const FAST_MS = 1000;    // while a run goes: progress the guider can watch
  const SLOW_MS = 10000;   // otherwise: the timer's runs show up too
  const DONE_SHOWN = 50;
  const KINDS = {clip: "Clip", still: "Still", film: "Review film", recording: "Whole recording",
    manifest: "List of files", erasure: "Erasure notice"};
  // Why sync stopped, in words; `sticky`: the box's timer waits for a person.
  const STOPS = {
    host_key: {why: "The box could not confirm it is talking to the office's own server: its " +
      "host key is not pinned on the box, or does not match. Nothing is sent.",
      todo: "The administrator checks the office server and pins its key (sync.known_hosts).",
      sticky: true},
    auth: {why: "The office refused the box's key.", todo: "The administrator adds the box's " +
      "public key (vigbox keys init) to the office's sync account.", sticky: true},
    disk_full: {why: "The office store is full.", todo: "The office frees space on its store.",
      sticky: false},
    config: {why: "The box's sync settings are incomplete.", todo: "The administrator completes " +
      "the [sync] section of /etc/vigbox/config.toml.", sticky: true},
  };
  let timer = null;
  let running = false;
  let lastError = "";
  let shownRun = null;   // started_at of the run whose end was announced
  let held = false;      // window.vigSync.hold(): a given state stays drawn

  function bytes(n) {
    if (n === null || n === undefined) return "";
    if (n < 1000) return n + " B";
    const units = ["kB", "MB", "GB"];
    let v = n / 1000, u = 0;
    while (v >= 1000 && u < units.length - 1) { v /= 1000; u += 1; }
    return (v < 10 ? v.toFixed(1) : Math.round(v)) + " " + units[u];
  }

  // "FAM-1 / c_ab12.mp4": the case and the file, not the office's folders or ".age".
  const fileOf = (name) => name.split("/").pop().replace(/\.age$/, "");
  const shortName = (item) => (item.case || "no case") + " / " + fileOf(item.name);

  const epochTime = (s) => localTime(new Date(s * 1000).toISOString());
  const plural = (n, one, many) => n + " " + (n === 1 ? one : many);

  function fact(dl, term, text, cls) {
    dl.append(el("dt", {text: term}), el("dd", {text, class: cls || null}));
  }

  function showFacts(data) {
    const s = data.state, dl = $("facts");
    dl.replaceChildren();
    fact(dl, "Office", s.destination || (data.configured ? "set, not yet tried" : "not set"),
      data.configured ? null : "muted");
    if (!data.configured) return;
    if (s.stopped) fact(dl, "State", "stopped: see above", "error");
    else if (s.last_error) fact(dl, "Last problem", s.last_error, "error");
    else if (s.last_ok_at) fact(dl, "Reachable", "yes: the last run sent everything it tried", "ok");
    else fact(dl, "Reachable", "not known yet: no run has finished", "muted");
    fact(dl, "Last good sync", s.last_ok_at ? localTime(s.last_ok_at) : "never", s.last_ok_at ? null : "muted");
    if (s.last_run_at && s.last_run_at !== s.last_ok_at) fact(dl, "Last try", localTime(s.last_run_at));
    if (s.host) fact(dl, "Office server", s.host);
    const keyStop = s.stopped && s.stopped.kind === "host_key";
    if (s.host_key_pinned === false) {
      fact(dl, "Host key", "not pinned: nothing is sent until the administrator pins it", "error");
    } else if (s.host_key_pinned) {
      fact(dl, "Host key", keyStop ? "pinned, but the server did not match it"
        : "pinned: the box only talks to that server", keyStop ? "error" : "ok");
    }
    if (s.folder) fact(dl, "Folder", s.folder);
    const c = data.counts;
    fact(dl, "Files", c.verified + " at the office, " +
      (c.planned + c.sealed) + " on the way" + (c.dropped ? ", " + c.dropped + " not sent" : ""));
  }

  function showStop(data) {
    // The box keeps a stop until a run gets through (the timer's runs included).
    const stop = data.configured ? data.state.stopped : null;
    $("stopped").hidden = !stop;
    if (!stop) return;
    const known = STOPS[stop.kind] || {why: "Sync stopped.", todo: "", sticky: true};
    const box = $("stopped");
    box.querySelector(".why").textContent = known.why;
    box.querySelector(".message").textContent = "The box says: " + stop.message +
      (stop.at ? " (" + localTime(stop.at) + ")" : "");
    box.querySelector(".todo").textContent = known.todo + " " + (known.sticky
      ? "The box's timer will not try again on its own: once it is fixed, press Sync now."
      : "The box keeps trying on its timer; once it is fixed, Sync now tries at once.");
  }

  // Encrypted files on their way: [bytes sent, bytes in all].
  function inFlight(data) {
    const sealed = data.items.filter((i) => i.status === "sealed" && i.size);
    return [sealed.reduce((a, i) => a + i.sent_bytes, 0), sealed.reduce((a, i) => a + i.size, 0)];
  }

  function runText(run, data) {
    const who = "Sync now by " + run.by + " at " + localTime(run.started_at);
    if (!run.finished_at) {
      const [sent, total] = inFlight(data), waiting = data.counts.planned + data.counts.sealed;
      return who + ": sending… " + plural(waiting, "file", "files") + " on the way" +
        (total ? "; " + bytes(sent) + " of " + bytes(total) + " encrypted sent." : ".");
    }
    if (run.error) return who + ": did not run: " + run.error;
    const s = run.summary;
    if (s.stopped && s.stopped.kind === "config" && !data.configured) {
      return who + ": nothing sent: " + s.stopped.message + ".";
    }
    if (s.stopped) {
      const shownAbove = data.state.stopped && data.state.stopped.message === s.stopped.message;
      return who + ": stopped" + (shownAbove ? " (see above)." : ": " + s.stopped.message);
    }
    let text = who + ": " + plural(s.uploaded, "file", "files") + " sent (" + bytes(s.bytes) +
      ") in " + Math.round(s.seconds) + " s; " + (s.pending ? s.pending + " still on the way." : "nothing waiting.");
    if (s.failed.length) text += " " + plural(s.failed.length, "failure", "failures") + ": " +
      s.failed.map((f) => (f.name ? fileOf(f.name) + ": " : "") + f.reason).join("; ");
    return text;
  }

  function showRun(data) {
    const run = data.last_run, box = $("run");
    box.hidden = !run;
    if (!run) return;
    box.querySelector(".run-text").textContent = runText(run, data);
    box.classList.toggle("going", !run.finished_at);
    const bar = $("run-progress");
    const [sent, total] = inFlight(data);
    bar.hidden = run.finished_at !== null || !total;
    if (total) { bar.max = total; bar.value = sent; }
    if (run.finished_at && shownRun === run.started_at) {
      shownRun = null;
      say(runText(run, data), run.error || (run.summary && (run.summary.stopped || run.summary.failed.length)) ? "error" : "");
    }
  }

  function itemHead(item) {
    return el("div", {class: "item-head"}, [
      el("strong", {class: "file", text: shortName(item)}),
      el("span", {class: "tag", text: KINDS[item.kind] || item.kind}),
      el("span", {class: "muted size", text: bytes(item.size)})]);
  }

  function waitingRow(item) {
    const parts = [itemHead(item)];
    if (item.status === "sealed" && item.size) {
      parts.push(el("progress", {max: item.size, value: item.sent_bytes,
        "aria-label": "Sent of " + shortName(item)}));
      parts.push(el("span", {class: "muted", text: "encrypted; " + bytes(item.sent_bytes) + " of " +
        bytes(item.size) + " sent"}));
    } else {
      parts.push(el("span", {class: "muted", text: "not yet encrypted"}));
    }
    if (item.attempts) {
      let text = item.attempts === 1 ? "tried once" : "tried " + item.attempts + " times";
      if (item.next_try_at * 1000 > Date.now()) text += "; next try " + epochTime(item.next_try_at) + " (Sync now tries at once)";
      parts.push(el("span", {class: "muted", text}));
    }
    if (item.last_error) parts.push(el("span", {class: "error why", text: item.last_error}));
    return el("li", {class: "sync-item", "data-id": item.id, "data-status": item.status}, parts);
  }

  function doneRow(item) {
    return el("li", {class: "sync-item", "data-id": item.id, "data-status": item.status}, [
      itemHead(item), el("span", {class: "muted", text: "at the office since " + localTime(item.verified_at)})]);
  }

  function droppedRow(item) {
    return el("li", {class: "sync-item", "data-id": item.id, "data-status": item.status}, [
      itemHead(item), el("span", {class: "why", text: item.last_error || "not sent"})]);
  }

  function fill(list, rows, empty) {
    list.replaceChildren(...(rows.length ? rows : [el("li", {class: "muted", text: empty})]));
  }

  function showLists(data) {
    const by = (status) => data.items.filter((i) => i.status === status);
    const waiting = by("sealed").concat(by("planned"));
    fill($("waiting"), waiting.map(waitingRow), "Nothing is waiting to go.");
    $("count-waiting").textContent = "(" + (data.counts.planned + data.counts.sealed) + ")";
    const done = by("verified").sort((a, b) => (b.verified_at || "").localeCompare(a.verified_at || ""));
    fill($("done"), done.slice(0, DONE_SHOWN).map(doneRow), "Nothing has been sent yet.");
    $("count-done").textContent = "(" + data.counts.verified + ")" +
      (data.counts.verified > DONE_SHOWN ? ": the newest " + DONE_SHOWN : "");
    const dropped = by("dropped");
    $("dropped-card").hidden = !dropped.length;
    fill($("dropped"), dropped.map(droppedRow), "");
    $("count-dropped").textContent = "(" + data.counts.dropped + ")";
  }

  function show(data) {
    running = data.running;
    $("unconfigured").hidden = data.configured;
    const button = $("sync-now");
    button.disabled = running || !data.configured;
    button.textContent = running ? "Syncing…" : "Sync now";
    showFacts(data);
    showStop(data);
    showRun(data);
    showLists(data);
    document.getElementById("office").dataset.loaded = "1";
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      // A poll: watching this screen does not keep the session alive.
      const data = await api("GET", "/api/sync", undefined, {poll: true});
      if (held) return;
      show(data);
      lastError = "";
    } catch (e) {
      if (e.message !== lastError) say(e.message, "error");
      lastError = e.message;
    }
    timer = setTimeout(refresh, running ? FAST_MS : SLOW_MS);
  }

  $("sync-now").addEventListener("click", async () => {
    const button = $("sync-now");
    button.disabled = true;
    try {
      const started = await api("POST", "/api/sync/run", {});
      shownRun = started.last_run.started_at;
      running = true;
      say("Sync started.");
    } catch (e) {
      say(e.message, "error");
    }
    refresh();
  });

  // For tests and demonstrations: draw a given state and stop polling.
  window.vigSync = {hold: (data) => { held = true; clearTimeout(timer); show(data); }};
  refresh();
})();
