// The live page: server-sent events carry the report as JSON; the page is
// updated with textContent only, so nothing from the mail (Subject, From,
// EHLO) is ever parsed as HTML.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  // The owner key (the page's own path): it opens the test's events.
  var key = live.getAttribute("data-key");
  var es = new EventSource("/t/" + encodeURIComponent(key) + "/events");
  function text(elID, s) { var e = document.getElementById(elID); if (e) { e.textContent = s; } }
  es.addEventListener("report", function (ev) {
    var r = JSON.parse(ev.data);
    var ph = document.getElementById("phase");
    ph.textContent = r.phase; ph.setAttribute("data-phase", r.phase);
    text("phase-text", r.phase_text);
    text("policy", r.policy);
    text("summary", r.summary);
    // The words of the page's language are in its data attributes.
    var hl = document.getElementById("headline");
    var h = r.headline.text.replace(/\.$/, "");
    var rating = r.headline.rating ? hl.getAttribute("data-r-" + r.headline.rating.replace(" ", "-")) : "";
    if (rating) { h += " (" + rating + ")"; }
    text("headline", h + ".");
    var firm = document.getElementById("firm");
    if (firm && r.final) { firm.textContent = firm.getAttribute("data-final"); }
    document.getElementById("verdict-line").className = "c-" + r.colour;
    var ol = document.getElementById("connections");
    while (ol.firstChild) { ol.removeChild(ol.firstChild); }
    (r.history || []).forEach(function (c) {
      var li = document.createElement("li");
      li.className = "conn c-" + c.colour;
      li.setAttribute("data-id", String(c.id));
      li.textContent = c.text + (c.ehlo ? "  EHLO " + c.ehlo : "");
      ol.appendChild(li);
    });
    text("count", String((r.history || []).length));
    var note = document.getElementById("tie-note");
    if (note) { note.textContent = r.tie_note || ""; note.hidden = !r.tie_note; }
    var ul = document.getElementById("untied");
    if (ul) {
      while (ul.firstChild) { ul.removeChild(ul.firstChild); }
      (r.untied || []).forEach(function (c) {
        var li = document.createElement("li");
        li.className = "untied";
        li.setAttribute("data-id", String(c.id));
        li.textContent = c.text;
        ul.appendChild(li);
      });
      text("untied-count", String((r.untied || []).length));
      document.getElementById("untied-box").hidden = !(r.untied && r.untied.length);
    }
    var auth = document.getElementById("authentication");
    if (auth && r.authentication) {
      while (auth.firstChild) { auth.removeChild(auth.firstChild); }
      (r.authentication.lines || []).forEach(function (l) {
        var li = document.createElement("li");
        li.textContent = l;
        auth.appendChild(li);
      });
      document.getElementById("auth-box").hidden = false;
    }
    if (r.mail) {
      var ml = document.getElementById("mail-line");
      var state = ml.getAttribute("data-" + r.mail.state) || r.mail.state;
      text("mail-line", ml.getAttribute("data-label") + ": " + state + (r.mail.reason ? " — " + r.mail.reason : ""));
    }
    if (r.final) { es.close(); }
  });
})();
