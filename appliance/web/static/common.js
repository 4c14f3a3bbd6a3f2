// Shared by every page: JSON calls with the CSRF token, messages, time formatting.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  async function api(method, url, body, opts) {
    const headers = {"X-CSRF-Token": csrf, "Accept": "application/json"};
    if (opts && opts.poll) headers["X-Vigbox-Poll"] = "1";
    const init = {method, headers, credentials: "same-origin", cache: "no-store"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    // A page that knows every session just ended (the clock was set) says so itself.
    if (response.status === 401 && !document.body.dataset.loggedOut) {
      window.location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("log in again");
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      throw new Error((data && data.error) || ("the box answered " + response.status));
    }
    return data;
  }

  let toastTimer = null;
  function say(text, kind) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.className = kind || "";
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 3500);
  }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function timecode(seconds) {
    const cs = Math.max(0, Math.round(seconds * 100));
    const m = Math.floor(cs / 6000), s = Math.floor(cs / 100) % 60, c = cs % 100;
    return m + ":" + String(s).padStart(2, "0") + "." + String(c).padStart(2, "0");
  }

  // "YYYY-MM-DD HH:MM" on the tablet's own clock (the box stores UTC).
  function localTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return String(iso).slice(0, 16).replace("T", " ");
    const p = (v) => String(v).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
      p(d.getHours()) + ":" + p(d.getMinutes());
  }

  // Build an element: el("li", {class: "x", text: "..."}, [children]); text is never HTML.
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children || []) node.append(c);
    return node;
  }

  // A Print button (the stills sheet): no inline script is allowed, so it is wired here.
  for (const b of document.querySelectorAll("[data-print]")) b.addEventListener("click", () => window.print());

  // For a page that asks the same thing again and again: answers can arrive out of order,
  // and only the newest question's may be shown. `const ask = newest()` once; per call
  // `const current = ask()`, and after the answer `if (!current()) return`.
  function newest() {
    let asked = 0;
    return () => { const mine = ++asked; return () => mine === asked; };
  }

  window.vig = {api, say, clock, timecode, localTime, el, csrf, newest};
})();
