// Cases: consent scopes with dates; add a case; record consent given or withdrawn.
"use strict";
(function () {
  const {api, say, el, newest} = window.vig;
  const SCOPES = ["filming", "supervision", "training"];

  function today() { return new Date().toISOString().slice(0, 10); }

  const ask = newest();   // an older answer that arrives late must not undo a newer one

  async function load() {
    const rows = document.getElementById("case-rows");
    const current = ask();
    try {
      const cases = await api("GET", "/api/cases");
      if (!current()) return;
      rows.replaceChildren();
      for (const c of cases) {
        const cells = [el("td", {class: "code", text: c.code})];
        if (c.erased_at) {   // nothing of it is left on the box
          cells.push(el("td", {colspan: "4", class: "muted",
                               text: "erased on the family's request, " + c.erased_at.slice(0, 10)}));
          rows.append(el("tr", {"data-case": c.code, class: "erased"}, cells));
          continue;
        }
        for (const scope of SCOPES) {
          const given = c.consent[scope];
          const toggle = el("button", {type: "button", class: given ? "quiet" : "",
            text: given ? "Withdraw" : "Record consent",
            onclick: () => change(c.code, scope, !given)});
          cells.push(el("td", {}, [
            el("span", {class: given ? "yes" : "no", text: given ? "given " + given : "not given"}),
            toggle]));
        }
        cells.push(el("td", {class: "case-actions"}, [
          el("a", {href: "/cases/" + encodeURIComponent(c.code) + "/review",
                   class: "button", text: "Shared review"}),
          c.closed_at ? el("span", {class: "muted", text: "closed " + c.closed_at.slice(0, 10)})
                      : el("button", {type: "button", class: "quiet close", text: "Close case",
                                      onclick: () => closeCase(c.code)}),
          el("button", {type: "button", class: "quiet danger erase", text: "Erase…",
                        onclick: () => erase(c.code)})]));
        rows.append(el("tr", {"data-case": c.code}, cells));
      }
      if (!cases.length) rows.append(el("tr", {}, [el("td", {colspan: "5", class: "muted", text: "No cases yet."})]));
    } catch (e) { say(e.message, "error"); }
  }

  async function change(code, scope, give) {
    let date = today();
    if (give) {
      // The day the family signed, which may be before today.
      date = window.prompt("Consent to " + scope + " for " + code + ": the day the family signed (YYYY-MM-DD)", today());
      if (date === null) return;
      date = date.trim() || today();
    } else if (!window.confirm("Record that the family withdrew consent to " + scope + " for " + code + "?")) {
      return;
    }
    try {
      await api("POST", "/api/cases/" + encodeURIComponent(code) + "/consent",
                give ? {give: [scope], date} : {withdraw: [scope]});
      say(give ? "Consent recorded." : "Withdrawal recorded.");
      load();
    } catch (e) { say(e.message, "error"); }
  }

  async function closeCase(code) {
    if (!window.confirm("Close case " + code + "? The work with the family has ended: its recordings leave the box some weeks after everything due is at the office.")) return;
    try { await api("POST", "/api/cases/" + encodeURIComponent(code) + "/close", {}); say("Case closed."); load(); }
    catch (e) { say(e.message, "error"); }
  }

  // Erasing is for a family that asks for it: it cannot be undone, so the code is typed.
  async function erase(code) {
    const typed = window.prompt("Erase case " + code + " on the family's request?\n\n" +
      "Its recordings, clips, stills, review films and notes leave this box now, and the office is told to delete its copies. This cannot be undone.\n\nType the case code to confirm:");
    if (typed === null) return;
    try {
      const done = await api("POST", "/api/cases/" + encodeURIComponent(code) + "/erase", {confirm: typed.trim()});
      say("Case " + code + " erased: " + done.recordings + " recordings, " + done.clips + " clips, " + done.stills + " stills.");
      load();
    } catch (e) { say(e.message, "error"); }
  }

  document.getElementById("add-case").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const scopes = [...form.querySelectorAll('input[name="scope"]:checked')].map((i) => i.value);
    try {
      await api("POST", "/api/cases", {code: form.code.value.trim(), scopes,
                                       date: form.date.value || null});
      form.reset();
      say("Case added.");
      load();
    } catch (err) { say(err.message, "error"); }
  });
  load();
})();
