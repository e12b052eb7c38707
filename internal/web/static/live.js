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
  // fill replaces the items of list elID with one <li class=cls> per
  // item, its text from textOf; false when the page has no such list.
  function fill(elID, items, cls, textOf, idOf) {
    var list = document.getElementById(elID);
    if (!list) { return false; }
    while (list.firstChild) { list.removeChild(list.firstChild); }
    (items || []).forEach(function (it) {
      var li = document.createElement("li");
      li.className = cls;
      if (idOf) { li.setAttribute("data-id", String(idOf(it))); }
      li.textContent = textOf(it);
      list.appendChild(li);
    });
    return true;
  }
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
    if (fill("untied", r.untied, "untied", function (c) { return c.text; }, function (c) { return c.id; })) {
      text("untied-count", String((r.untied || []).length));
      document.getElementById("untied-box").hidden = !(r.untied && r.untied.length);
    }
    if (r.authentication && fill("authentication", r.authentication.lines, "", function (l) { return l; })) {
      document.getElementById("auth-box").hidden = false;
    }
    if (fill("tlsrpt-reports", r.tlsrpt_reports, "tlsrpt-report", function (t) { return t.text; })) {
      document.getElementById("tlsrpt-box").hidden = !(r.tlsrpt_reports && r.tlsrpt_reports.length);
    }
    if (r.mail) {
      var ml = document.getElementById("mail-line");
      var state = ml.getAttribute("data-" + r.mail.state) || r.mail.state;
      text("mail-line", ml.getAttribute("data-label") + ": " + state + (r.mail.reason ? " — " + r.mail.reason : ""));
    }
    if (r.final) { es.close(); }
  });
})();
