// Settings (administrators): the box's name, recording limits, downloads, the tag scheme.
"use strict";
(function () {
  const {api, say, el} = window.vig;
  const $ = (id) => document.getElementById(id);
  let loaded = null;   // the settings as the box last described them

  // Each setting's form field, and how its value goes to and from the box.
  const FIELDS = {
    "device_name": {input: "device_name", show: (v) => v, read: (i) => i.value.trim()},
    "recording.max_seconds": {input: "max_minutes", show: (v) => v / 60,
      read: (i) => Math.round(Number(i.value) * 60)},
    "recording.warn_before_end_s": {input: "warn_s", show: (v) => v,
      read: (i) => Math.round(Number(i.value))},
    "web.downloads_allowed": {input: "downloads", show: (v) => v, read: (i) => i.checked},
  };

  function fileValueText(key, s) {
    if (key === "device_name") return s.file_value || "the host name";
    if (key === "recording.max_seconds") return (s.file_value / 60) + " min";
    if (key === "web.downloads_allowed") return s.file_value ? "allowed" : "off";
    return s.file_value + " s";
  }

  function show(data) {
    loaded = data.settings;
    const name = document.querySelector(".bar .box-name");
    if (name) name.textContent = data.box_name;
    for (const [key, f] of Object.entries(FIELDS)) {
      const s = loaded[key], input = $(f.input);
      if (input.type === "checkbox") input.checked = s.value; else input.value = f.show(s.value);
      if (key === "device_name") input.placeholder = data.box_name;
      const box = document.querySelector('.setting[data-key="' + key + '"]');
      let undo = box.querySelector(".undo");
      if (undo) undo.remove();
      if (s.changed_on_box) {
        undo = el("button", {type: "button", class: "link undo",
          text: "Use the config file's value (" + fileValueText(key, s) + ")",
          onclick: () => send({[key]: null})});
        box.append(undo);
      }
    }
  }

  async function send(changes) {
    try {
      show(await api("PATCH", "/api/settings", changes));
      say("Settings saved.");
      return true;
    } catch (e) { say(e.message, "error"); return false; }
  }

  $("settings").addEventListener("submit", (e) => {
    e.preventDefault();
    if (!loaded) return;
    const changes = {};
    for (const [key, f] of Object.entries(FIELDS)) {
      const value = f.read($(f.input));
      if (value !== loaded[key].value) changes[key] = key === "device_name" && !value ? null : value;
    }
    if (!Object.keys(changes).length) { say("Nothing to save: no setting was changed."); return; }
    send(changes);
  });

  async function loadTags() {
    try {
      const tags = await api("GET", "/api/tags");
      const list = $("tags");
      list.replaceChildren();
      for (const t of tags) {
        const label = el("input", {value: t.label, maxlength: "60", "aria-label": "Tag name",
          disabled: t.retired});
        const rename = el("button", {type: "button", class: "quiet", text: "Rename",
          onclick: () => changeTag(t.id, {label: label.value})});
        list.append(el("li", {class: t.retired ? "retired" : "", "data-id": t.id}, t.retired
          ? [el("span", {class: "tag", text: t.label}), el("span", {class: "muted", text: "retired"})]
          : [label, rename, el("button", {type: "button", class: "quiet", text: "Retire",
              onclick: () => retire(t.id)})]));
      }
    } catch (e) { say(e.message, "error"); }
  }

  async function changeTag(id, change) {
    try { await api("PATCH", "/api/tags/" + id, change); say("Tag saved."); loadTags(); }
    catch (e) { say(e.message, "error"); }
  }

  function retire(id) {
    if (!window.confirm("Stop offering this tag? Moments that have it keep it; add it again to bring it back.")) return;
    changeTag(id, {retired: true});
  }

  $("add-tag").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await api("POST", "/api/tags", {label: e.target.label.value}); e.target.reset(); loadTags(); }
    catch (err) { say(err.message, "error"); }
  });

  api("GET", "/api/settings").then(show).catch((e) => say(e.message, "error"));
  loadTags();
})();
