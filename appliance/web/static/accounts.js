// Accounts (administrators).
"use strict";
(function () {
  const {api, say, el} = window.vig;
  const me = (document.querySelector(".bar .who") || {}).textContent;

  async function load() {
    try {
      const users = await api("GET", "/api/users");
      const ul = document.getElementById("users");
      ul.replaceChildren();
      for (const u of users) {
        ul.append(el("li", {}, [el("strong", {text: u.name}), el("span", {class: "muted", text: u.admin ? "administrator" : "guider"}),
          u.name === me ? el("span", {class: "muted", text: "you"}) :
          el("button", {type: "button", class: "quiet", text: "Remove", onclick: () => remove(u.name)})]));
      }
    } catch (e) { say(e.message, "error"); }
  }

  async function remove(name) {
    if (!window.confirm("Remove the account " + name + "?")) return;
    try { await api("DELETE", "/api/users/" + encodeURIComponent(name)); load(); }
    catch (e) { say(e.message, "error"); }
  }

  document.getElementById("add-user").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    try {
      await api("POST", "/api/users", {name: f.name.value.trim().toLowerCase(), password: f.password.value, admin: f.admin.checked});
      f.reset(); say("Account added."); load();
    } catch (err) { say(err.message, "error"); }
  });
  load();
})();
