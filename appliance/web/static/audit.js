// Audit (administrators): the log newest first, filtered by action, and whether it is intact.
"use strict";
(function () {
  const {api, say, el, localTime, newest} = window.vig;
  const $ = (id) => document.getElementById(id);
  const SHOWN = 500;
  const HASH = /^[0-9a-f]{40,}$/;
  let pending = null;
  const ask = newest();   // answers to older filters are dropped when they arrive late

  // {"case": "FAM-1", "size": 123} as "case FAM-1 · size 123"; hashes shortened.
  function detailText(detail) {
    return Object.entries(detail || {}).map(([k, v]) => {
      let text = typeof v === "string" ? v : JSON.stringify(v);
      if (HASH.test(text)) text = text.slice(0, 12) + "…";
      return k + " " + text;
    }).join(" · ");
  }

  function showIntegrity(data) {
    const banner = $("integrity");
    banner.className = "banner " + (data.intact ? "intact" : "altered");
    banner.replaceChildren(el("strong", {text: data.intact ? "Intact." : "Altered."}),
      " " + (data.intact ? "Every entry is chained to the one before: none has been removed or changed."
        : "The chain of entries is broken: entries were removed or changed outside the box's software."));
    if (!data.intact) {
      banner.append(el("ul", {}, data.problems.map((p) => el("li", {text: p}))));
    }
  }

  function row(e) {
    const detail = detailText(e.detail);
    return el("tr", {"data-id": e.id, "data-action": e.action}, [
      el("td", {class: "when", text: localTime(e.at), title: e.at}),
      el("td", {class: "actor", text: e.actor}),
      el("td", {class: "action", text: e.action}),
      el("td", {class: "subject", text: e.subject || ""}),
      el("td", {class: "detail", text: detail, title: JSON.stringify(e.detail)})]);
  }

  async function load() {
    const prefix = $("action").value.trim();
    const current = ask();
    try {
      const data = await api("GET", "/api/audit?limit=" + SHOWN + "&action=" + encodeURIComponent(prefix));
      if (!current()) return;
      showIntegrity(data);
      const entries = data.entries.slice().reverse();
      const body = $("entries");
      body.replaceChildren(...(entries.length ? entries.map(row)
        : [el("tr", {}, [el("td", {colspan: "5", class: "muted", text: prefix
          ? "No entry's action starts with \u201c" + prefix + "\u201d." : "The log is empty."})])]));
      $("shown").textContent = (entries.length >= SHOWN ? "The newest " + SHOWN : entries.length) +
        (prefix ? " entries whose action starts with \u201c" + prefix + "\u201d" : " entries") +
        ", newest first." + (entries.length >= SHOWN ? " Download the log for all of them." : "");
      document.querySelector(".audit-page").dataset.shown = prefix;
    } catch (e) { say(e.message, "error"); }
  }

  function setFilter(prefix) {
    $("action").value = prefix;
    for (const b of document.querySelectorAll("[data-prefix]")) {
      b.setAttribute("aria-pressed", b.dataset.prefix === prefix ? "true" : "false");
    }
    load();
  }

  $("action").addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(() => setFilter($("action").value.trim()), 250);
  });
  $("filter").addEventListener("submit", (e) => { e.preventDefault(); setFilter($("action").value.trim()); });
  for (const b of document.querySelectorAll("[data-prefix]")) {
    b.addEventListener("click", () => setFilter(b.dataset.prefix));
  }
  setFilter("");
})();
