// The provider table sorted and filtered in place (docs/providers.md).
// Progressive enhancement: without this script the same form and header
// links ask the server (?q=, ?outbound=, ?inbound=, ?sort=, ?order=), which
// answers the page in the same order with the same rows hidden; with it,
// the page does both without a reload and keeps the address in step, so
// a copied link shows the same table.
(function () {
  "use strict";
  var table = document.getElementById("providers");
  var form = document.getElementById("providers-filter");
  if (!table || !form) {
    return;
  }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.querySelectorAll("tr[data-domain]"));
  var count = document.getElementById("providers-count");
  var params = new URLSearchParams(window.location.search);
  var state = {
    sort: params.get("sort") || "domain",
    desc: params.get("order") === "desc"
  };
  var field = function (name) { return form.elements[name]; };

  function key(row, sort) {
    switch (sort) {
      case "tested": return Number(row.dataset.tested);
      case "outbound": return Number(row.dataset.outboundRank);
      case "inbound": return Number(row.dataset.inboundRank);
    }
    return row.dataset.domain;
  }

  // The server's order (web/providers.go, providerQuery.sort): by the
  // column, ties by domain; descending turns both round for the domain
  // column only.
  function compare(a, b) {
    var ka = key(a, state.sort), kb = key(b, state.sort);
    var c = ka < kb ? -1 : ka > kb ? 1 : 0;
    if (state.desc) {
      c = -c;
    }
    if (c === 0) {
      c = a.dataset.domain < b.dataset.domain ? -1 : a.dataset.domain > b.dataset.domain ? 1 : 0;
      if (state.desc && state.sort === "domain") {
        c = -c;
      }
    }
    return c;
  }

  function query() {
    var q = new URLSearchParams();
    var text = field("q").value.trim();
    if (text) { q.set("q", text); }
    if (field("outbound").value) { q.set("outbound", field("outbound").value); }
    if (field("inbound").value) { q.set("inbound", field("inbound").value); }
    if (state.sort !== "domain") { q.set("sort", state.sort); }
    if (state.desc) { q.set("order", "desc"); }
    return q;
  }

  function update() {
    var text = field("q").value.trim().toLowerCase();
    var out = field("outbound").value, inb = field("inbound").value;
    var shown = 0;
    rows.sort(compare);
    rows.forEach(function (row) {
      var match = (!text || row.dataset.text.indexOf(text) >= 0) &&
        (!out || row.dataset.outbound === out) && (!inb || row.dataset.inbound === inb);
      row.hidden = !match;
      if (match) { shown++; }
      body.appendChild(row);
    });
    if (count) {
      // The sentence is the page's (data-format), so it is translated
      // with the page.
      count.textContent = count.dataset.format.replace("{shown}", shown).replace("{total}", rows.length);
    }
    table.querySelectorAll("th a[data-sort]").forEach(function (a) {
      var th = a.parentNode;
      th.setAttribute("aria-sort", a.dataset.sort !== state.sort ? "none" : state.desc ? "descending" : "ascending");
    });
    var q = query().toString();
    ["providers-json", "providers-csv"].forEach(function (id) {
      var a = document.getElementById(id);
      if (a) { a.href = a.pathname + (q ? "?" + q : ""); }
    });
    window.history.replaceState(null, "", window.location.pathname + (q ? "?" + q : ""));
  }

  form.addEventListener("submit", function (e) { e.preventDefault(); update(); });
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  table.querySelectorAll("th a[data-sort]").forEach(function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      var sort = a.dataset.sort;
      state.desc = sort === state.sort ? !state.desc : false;
      state.sort = sort;
      update();
    });
  });
  document.documentElement.dataset.providersScript = "ready";
})();
