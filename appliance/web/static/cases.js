// Cases: consent scopes with dates; add a case; record consent given or withdrawn.
"use strict";
(function () {
  const {api, say, el} = window.vig;
  const SCOPES = ["filming", "supervision", "training"];

  function today() { return new Date().toISOString().slice(0, 10); }

  async function load() {
    const rows = document.getElementById("case-rows");
    try {
      const cases = await api("GET", "/api/cases");
      rows.replaceChildren();
      for (const c of cases) {
        const cells = [el("td", {class: "code", text: c.code})];
        for (const scope of SCOPES) {
          const given = c.consent[scope];
          const toggle = el("button", {type: "button", class: given ? "quiet" : "",
            text: given ? "Withdraw" : "Record consent",
            onclick: () => change(c.code, scope, !given)});
          cells.push(el("td", {}, [
            el("span", {class: given ? "yes" : "no", text: given ? "given " + given : "not given"}),
            toggle]));
        }
        cells.push(el("td", {}, [el("a", {href: "/cases/" + encodeURIComponent(c.code) + "/review",
                                          class: "button", text: "Shared review"})]));
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
