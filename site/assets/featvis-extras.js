/* featvis gallery: real examples and circuit links in the unit lightbox (data from unit.json, built by
   featvis_site.examples_pages). Every string from the store goes in through textContent or setAttribute,
   never as HTML. */
(function () {
  "use strict";

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(v) { return typeof v === "number" ? String(+v.toPrecision(3)) : ""; }

  function strip(title, items, base, kind) {
    var wrap = el("div", "fv-lb-strip fv-lb-" + kind);
    wrap.appendChild(el("span", "fv-dim", title));
    var row = el("div", "fv-lb-thumbs");
    items.forEach(function (it) {
      var link = el(it.href ? "a" : "span", "fv-lb-thumb");
      if (it.href) link.setAttribute("href", new URL(it.href, base).href);
      var label = kind === "circuit" ? it.label + " (" + (it.weight >= 0 ? "+" : "") + fmt(it.weight) + ")"
        : it.name + ": " + fmt(it.score);
      link.setAttribute("title", label);
      var img = el("img");
      img.setAttribute("src", new URL(it.src, base).href);
      img.setAttribute("alt", label);
      img.setAttribute("loading", "lazy");
      img.width = 72; img.height = 72;
      link.appendChild(img);
      var cap = el("span", "fv-lb-thumb-cap", kind === "circuit" ? "#" + it.unit.split(":").pop() : fmt(it.score));
      if (kind === "circuit") link.classList.add(it.weight >= 0 ? "fv-excite" : "fv-inhibit");
      link.appendChild(cap);
      row.appendChild(link);
    });
    wrap.appendChild(row);
    return wrap;
  }

  document.addEventListener("featvis:unit", function (e) {
    var box = e.detail.box, rec = e.detail.record, base = e.detail.url;
    var old = box.querySelector(".fv-lb-extras");
    if (old) old.remove();
    var ex = rec.examples, circ = rec.circuits;
    if (!ex && !circ) return;
    var part = el("div", "fv-lb-extras");
    if (ex && ex.top && ex.top.length) {
      part.appendChild(strip("Strongest real examples (of " + ex.images + " images and their crops)", ex.top, base, "top"));
    }
    if (ex && ex.bottom && ex.bottom.length) {
      part.appendChild(strip("Most negative", ex.bottom, base, "bottom"));
    }
    if (circ && circ.upstream) {
      part.appendChild(strip("Driven most by (previous layer; green excites, red inhibits)", circ.upstream, base, "circuit"));
    }
    if (circ && circ.downstream) part.appendChild(strip("Feeds most (next layer)", circ.downstream, base, "circuit"));
    var foot = box.querySelector(".fv-lb-foot");
    box.insertBefore(part, foot);
  });
})();
