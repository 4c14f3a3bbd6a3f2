// Home: when the box's clock and this tablet's differ by more than the box allows, offer
// to set the box's from the tablet's. A Pi has no real-time clock, and recordings carry
// the box's date. Setting it ends every session (they are timed by the clock). A guider
// may move it by up to a day; the box says so, in the banner, when more needs an
// administrator.
"use strict";
(function () {
  const {api, say, localTime, el} = window.vig;
  const banner = document.getElementById("clock-banner");
  if (!banner) return;

  function shown(ms) {
    return localTime(new Date(ms).toISOString());
  }

  // The box's time against this tablet's, halfway through the request (the network's
  // delay is not the clocks' difference).
  async function compare() {
    const sent = Date.now();
    const box = await api("GET", "/api/clock", undefined, {poll: true});
    const tablet = Math.round((sent + Date.now()) / 2);
    return {box, tablet, skewMs: box.box_epoch_ms - tablet};
  }

  function offer(c) {
    const button = el("button", {type: "button", id: "clock-set", class: "primary",
                                 text: "Set the box's clock from this tablet", onclick: setClock});
    banner.replaceChildren(
      el("p", {}, [
        el("strong", {text: "The box's clock is wrong. "}),
        "The box's clock says ", el("span", {id: "clock-box", text: shown(c.box.box_epoch_ms)}),
        ", this tablet says ", el("span", {id: "clock-tablet", text: shown(c.tablet)}),
        ". New recordings would carry the box's date."]),
      button);
    banner.dataset.skewMs = String(c.skewMs);
    banner.hidden = false;
  }

  async function setClock(event) {
    const button = event.currentTarget;
    button.disabled = true;
    // Every session ends when the clock is set: Home must stop polling and not jump to
    // the login page before the guider has read why.
    document.body.dataset.loggedOut = "1";
    try {
      const done = await api("POST", "/api/clock", {tablet_epoch_ms: Date.now()});
      if (!done.changed) {
        delete document.body.dataset.loggedOut;
        banner.hidden = true;
        say("The box's clock was already right.");
        return;
      }
      const told = [
        el("strong", {text: "The box's clock now says " + shown(done.box_epoch_ms) + ". "}),
        "Everyone was logged out, as sessions are timed by the clock: log in again."];
      if (done.warning) told.push(" Tell the administrator: " + done.warning + ".");
      document.dispatchEvent(new CustomEvent("vig:logged-out"));
      // Nobody is logged in any more: the header must not still name them.
      const who = document.querySelector("header .logout");
      if (who) who.hidden = true;
      banner.replaceChildren(
        el("p", {id: "clock-done"}, told),
        el("a", {class: "button primary", id: "clock-relogin", href: "/login?next=/",
                 text: "Log in again"}));
    } catch (e) {
      delete document.body.dataset.loggedOut;
      button.disabled = false;
      refused(e.message);
    }
  }

  // Why the box did not take the tablet's time (e.g. more than a day needs an
  // administrator), kept in the banner next to the clocks, where the guider looks.
  function refused(message) {
    let p = document.getElementById("clock-refused");
    if (!p) {
      p = el("p", {id: "clock-refused", class: "error"});
      banner.append(p);
    }
    p.textContent = message.charAt(0).toUpperCase() + message.slice(1) + ".";
  }

  async function check() {
    try {
      const c = await compare();
      if (Math.abs(c.skewMs) > c.box.max_skew_s * 1000) offer(c);
      else banner.hidden = true;
    } catch (e) { /* Home's status line says what is wrong with the box */ }
    banner.dataset.checked = "1";
  }

  check();
})();
