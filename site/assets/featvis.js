/* featvis gallery: hover previews, the unit lightbox, and filter + pager for long grids.
   Dependency-free. Everything is progressive: without this script a cell is a link to its full image. */
(function () {
  "use strict";

  var records = new Map(); // unit.json URL -> Promise of its record

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function cellOf(node) { return node && node.closest ? node.closest("a.fv-cell") : null; }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function fmt(v) {
    if (v === null || v === undefined || v === "") return "–";
    if (typeof v !== "number") return esc(v);
    var a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(2) : String(+v.toPrecision(4));
  }

  /* ------------------------------------------------------------- location hash: #q=filter&k=unit */
  function hashParams() { return new URLSearchParams(location.hash.replace(/^#/, "")); }
  function setHash(key, value) {
    var p = hashParams();
    if (value === null || value === undefined || value === "") p.delete(key); else p.set(key, value);
    var s = p.toString();
    history.replaceState(history.state, "", s ? "#" + s : location.pathname + location.search);
  }

  /* ------------------------------------------------------------- hover / focus plays the optimisation */
  // The cell's data-anim is the unit's MP4: a muted looping video laid over the thumbnail while pointed at
  // or focused, then paused and removed (no decoder keeps running, the thumbnail shows again).
  function play(cell) {
    var img = $("img", cell), src = cell.getAttribute("data-anim");
    if (!img || !src || $("video.fv-hover", cell)) return;
    var v = document.createElement("video");
    v.className = "fv-hover";
    v.muted = v.loop = v.autoplay = v.playsInline = true;
    v.setAttribute("muted", "");
    v.setAttribute("playsinline", "");
    v.setAttribute("aria-hidden", "true");
    v.poster = img.currentSrc || img.src;
    v.src = src;
    img.insertAdjacentElement("afterend", v);
    var p = v.play();
    if (p && p.catch) p.catch(function () { /* refused, or removed before it started: the thumbnail stays */ });
  }
  function still(root) {
    $$("video.fv-hover", root).forEach(function (v) {
      v.pause(); v.removeAttribute("src"); v.load(); v.remove();
    });
  }
  document.addEventListener("pointerover", function (e) {
    var c = cellOf(e.target);
    if (c && !c.contains(e.relatedTarget)) play(c);
  });
  document.addEventListener("pointerout", function (e) {
    var c = cellOf(e.target);
    if (c && !c.contains(e.relatedTarget)) still(c);
  });
  document.addEventListener("focusin", function (e) { var c = cellOf(e.target); if (c) play(c); });
  document.addEventListener("focusout", function (e) { var c = cellOf(e.target); if (c) still(c); });

  /* ------------------------------------------------------------- lightbox */
  var box = null, list = [], pos = -1, token = 0;

  function ensureBox() {
    if (box && document.body.contains(box)) return box;
    box = document.createElement("dialog");
    box.className = "fv-lightbox";
    box.setAttribute("aria-labelledby", "fv-lb-title");
    box.innerHTML =
      '<div class="fv-lb-head"><h2 id="fv-lb-title"></h2><span class="fv-lb-sub"></span>' +
      '<div class="fv-lb-tools"><button type="button" data-act="prev" aria-label="Previous unit" title="Previous (←)">‹</button>' +
      '<button type="button" data-act="next" aria-label="Next unit" title="Next (→)">›</button>' +
      '<button type="button" data-act="close" aria-label="Close" title="Close (Esc)">✕</button></div></div>' +
      '<div class="fv-lb-body"><figure><img class="fv-lb-img" alt=""><figcaption>Final image</figcaption></figure>' +
      '<figure class="fv-lb-anim"><video class="fv-lb-video" autoplay loop muted playsinline controls preload="auto"></video>' +
      '<figcaption>The optimisation, step by step</figcaption></figure>' +
      '<div class="fv-lb-info"><div class="fv-lb-chart"></div><div class="fv-lb-scores"></div></div></div>' +
      '<div class="fv-lb-div" hidden><span class="fv-dim">Diverse images</span><span class="fv-lb-divs"></span></div>' +
      '<div class="fv-lb-foot"><a class="fv-lb-open" target="_blank" rel="noopener">Open full-size image</a>' +
      '<span class="fv-lb-timing"></span></div>';
    document.body.appendChild(box);
    box.addEventListener("click", function (e) {
      if (e.target === box) { box.close(); return; }
      var act = e.target.closest("[data-act]");
      if (!act) return;
      var what = act.getAttribute("data-act");
      if (what === "close") box.close();
      else step(what === "next" ? 1 : -1);
    });
    box.addEventListener("keydown", function (e) {
      if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
      else if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
    });
    box.addEventListener("close", function () {
      var v = $(".fv-lb-video", box);
      v.pause(); v.removeAttribute("src"); v.load();
      setHash("k", null);
      token++;
    });
    return box;
  }

  function load(url) {
    if (!records.has(url)) {
      records.set(url, fetch(url).then(function (r) {
        if (!r.ok) throw new Error(r.status + " " + url);
        return r.json();
      }));
    }
    return records.get(url);
  }

  function step(delta) {
    if (!list.length) return;
    pos = (pos + delta + list.length) % list.length;
    show(list[pos]);
  }

  function open(cell) {
    still(document);
    ensureBox();
    list = $$("a.fv-cell").filter(function (c) { return !c.closest("[hidden]"); });
    pos = list.indexOf(cell);
    if (pos < 0) { list.push(cell); pos = list.length - 1; }
    show(cell);
    if (!box.open) box.showModal();
  }

  function chart(history, act) {
    var pts = [];
    history.forEach(function (v, i) { if (typeof v === "number") pts.push([i, v]); });
    if (pts.length < 2) return '<p class="fv-dim">No activation history recorded.</p>';
    var W = 320, H = 132, L = 40, R = 10, T = 10, B = 22;
    var vals = pts.map(function (p) { return p[1]; });
    var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
    if (hi === lo) { hi += 1; lo -= 1; }
    var n = history.length - 1 || 1;
    function x(i) { return L + (i / n) * (W - L - R); }
    function y(v) { return T + ((hi - v) / (hi - lo)) * (H - T - B); }
    var line = pts.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
    var base = y(Math.max(lo, Math.min(hi, 0))).toFixed(1);
    var area = "M" + x(pts[0][0]).toFixed(1) + "," + base + " L" + line.replace(/ /g, " L") +
      " L" + x(pts[pts.length - 1][0]).toFixed(1) + "," + base + " Z";
    var best = pts.reduce(function (m, p) { return p[1] > m[1] ? p : m; }, pts[0]);
    var steps = act && act.steps ? act.steps : history.length;
    return '<svg viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="Activation over ' + steps + ' optimisation steps">' +
      "<title>Activation per optimisation step</title>" +
      '<line class="fv-axis" x1="' + L + '" y1="' + (H - B) + '" x2="' + (W - R) + '" y2="' + (H - B) + '"/>' +
      '<line class="fv-axis" x1="' + L + '" y1="' + T + '" x2="' + L + '" y2="' + (H - B) + '"/>' +
      '<path class="fv-area" d="' + area + '"/>' +
      '<polyline class="fv-line" points="' + line + '"/>' +
      '<circle class="fv-best" r="3.5" cx="' + x(best[0]).toFixed(1) + '" cy="' + y(best[1]).toFixed(1) + '"/>' +
      '<text x="' + (L - 4) + '" y="' + (T + 8) + '" text-anchor="end">' + fmt(hi) + "</text>" +
      '<text x="' + (L - 4) + '" y="' + (H - B) + '" text-anchor="end">' + fmt(lo) + "</text>" +
      '<text x="' + L + '" y="' + (H - 6) + '">step 0</text>' +
      '<text x="' + (W - R) + '" y="' + (H - 6) + '" text-anchor="end">step ' + steps + "</text>" +
      '<text x="' + ((L + W - R) / 2) + '" y="' + (H - 6) + '" text-anchor="middle">activation</text></svg>';
  }

  function scores(rec) {
    var a = rec.activation || {}, rows = [];
    rows.push(["Activation start → final", fmt(a.start) + " → " + fmt(a.final)]);
    rows.push(["Best activation", fmt(a.best)]);
    Object.keys(rec.scores || {}).forEach(function (k) {
      if (k === "activation") return;
      var v = rec.scores[k];
      var pct = /top/.test(k) && typeof v === "number" && v >= 0 && v <= 1;
      var name = /^(.+)_top(\d+)$/.test(k) ? k.replace(/^(.+)_top(\d+)$/, "Top-$2 ($1)") : k.replace(/_/g, " ");
      rows.push([name, pct ? Math.round(v * 100) + "%" : fmt(v)]);
    });
    return "<table><tbody>" + rows.map(function (r) {
      return "<tr><td>" + esc(r[0]) + "</td><td>" + r[1] + "</td></tr>";
    }).join("") + "</tbody></table>";
  }

  function show(cell) {
    var my = ++token;
    var metaUrl = new URL(cell.getAttribute("data-meta"), location.href).href;
    var img = $(".fv-lb-img", box), video = $(".fv-lb-video", box), anim = $(".fv-lb-anim", box);
    $("#fv-lb-title", box).textContent = cell.getAttribute("title") || "";
    $(".fv-lb-sub", box).textContent = "";
    img.src = cell.href;
    img.alt = cell.getAttribute("title") || "";
    $(".fv-lb-open", box).href = cell.href;
    $(".fv-lb-chart", box).innerHTML = "";
    $(".fv-lb-scores", box).innerHTML = "";
    setHash("k", cell.getAttribute("data-k"));
    load(metaUrl).then(function (rec) {
      if (my !== token) return;
      var at = function (p) { return p ? new URL(p, metaUrl).href : null; };
      $("#fv-lb-title", box).textContent = rec.name;
      $(".fv-lb-sub", box).textContent = rec.unit + " · " + rec.model + " · job " + rec.job;
      anim.hidden = !rec.mp4; // no video (none rendered, or left out by the size budget): no animation
      if (rec.mp4) {
        video.poster = at(rec.poster);
        video.src = at(rec.mp4);
        var p = video.play();
        if (p && p.catch) p.catch(function () { /* autoplay refused or interrupted: controls remain */ });
      } else {
        video.pause(); video.removeAttribute("src"); video.load();
      }
      $(".fv-lb-chart", box).innerHTML = chart(rec.history || [], rec.activation);
      $(".fv-lb-scores", box).innerHTML = scores(rec);
      var div = $(".fv-lb-divs", box), extra = rec.diversity || [];
      $(".fv-lb-div", box).hidden = !extra.length;
      div.innerHTML = "";
      if (extra.length) {
        [rec.image].concat(extra).forEach(function (p, i) {
          var b = document.createElement("button");
          b.type = "button";
          b.setAttribute("aria-pressed", i === 0 ? "true" : "false");
          b.setAttribute("aria-label", i === 0 ? "Main image" : "Diversity image " + i);
          b.innerHTML = '<img alt="" loading="lazy" src="' + esc(at(p)) + '">';
          b.addEventListener("click", function () {
            img.src = at(p);
            $(".fv-lb-open", box).href = at(p);
            $$("button", div).forEach(function (o) { o.setAttribute("aria-pressed", o === b ? "true" : "false"); });
          });
          div.appendChild(b);
        });
      }
      var t = rec.timings || {}, bits = [];
      if (t.render_s !== undefined) bits.push("rendered in " + fmt(t.render_s) + " s");
      if (t.steps !== undefined) bits.push(t.steps + " steps");
      if (t.device) bits.push(t.device);
      if (rec.size) bits.push(rec.size[0] + "×" + rec.size[1] + " px");
      $(".fv-lb-timing", box).textContent = bits.join(" · ");
      // featvis-extras.js adds real examples and circuit links (record URLs are relative to metaUrl)
      document.dispatchEvent(new CustomEvent("featvis:unit", { detail: { box: box, record: rec, url: metaUrl } }));
    }, function () {
      if (my === token) $(".fv-lb-scores", box).innerHTML = '<p class="fv-dim">Details are unavailable.</p>';
    });
  }

  document.addEventListener("click", function (e) {
    var c = cellOf(e.target);
    if (!c || !c.hasAttribute("data-meta") || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    open(c);
  });

  /* ------------------------------------------------------------- filter + pager */
  function initBrowser(root) {
    if (root.dataset.fvReady) return;
    root.dataset.fvReady = "1";
    var bar = $(".fv-toolbar", root), grid = $(".fv-filterable", root);
    if (!bar || !grid) return;
    var items = $$(":scope > [data-name]", grid);
    var size = parseInt(bar.getAttribute("data-page-size"), 10) || 0;
    var input = $(".fv-filter", bar), count = $(".fv-count", bar), pager = $(".fv-pager", bar);
    var prev = $(".fv-prev", bar), next = $(".fv-next", bar), label = $(".fv-page", bar);
    var matches = items, page = 0;
    bar.hidden = false;
    pager.hidden = !size;

    var zoom = $(".fv-zoom input", bar);
    function applyZoom(v) { grid.style.setProperty("--fv-cell", v + "rem"); }
    if (zoom) {
      var saved = null;
      try { saved = localStorage.getItem("featvis.zoom"); } catch (e) { /* storage disabled */ }
      if (saved) { zoom.value = saved; applyZoom(saved); }
      zoom.addEventListener("input", function () {
        applyZoom(zoom.value);
        try { localStorage.setItem("featvis.zoom", zoom.value); } catch (e) { /* storage disabled */ }
      });
    }

    function match(q) {
      q = q.trim().toLowerCase();
      if (!q) return items;
      if (/^#?\d+$/.test(q)) {
        var n = q.replace("#", "");
        return items.filter(function (it) { return it.getAttribute("data-i") === n; });
      }
      var words = q.split(/\s+/);
      return items.filter(function (it) {
        var name = it.getAttribute("data-name");
        return words.every(function (w) { return name.indexOf(w) >= 0; });
      });
    }
    function render() {
      var pages = size ? Math.max(1, Math.ceil(matches.length / size)) : 1;
      page = Math.max(0, Math.min(page, pages - 1));
      var lo = size ? page * size : 0, hi = size ? lo + size : matches.length;
      var shown = new Set(matches.slice(lo, hi));
      items.forEach(function (it) { it.hidden = !shown.has(it); });
      count.textContent = matches.length === items.length
        ? items.length + " in total" : matches.length + " of " + items.length + " match";
      label.textContent = "page " + (page + 1) + " of " + pages;
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    }
    function turn(delta) {
      page += delta;
      render();
      if (bar.getBoundingClientRect().top < 0) root.scrollIntoView({ block: "start" });
    }
    input.addEventListener("input", function () {
      matches = match(input.value);
      page = 0;
      render();
      setHash("q", input.value.trim());
    });
    prev.addEventListener("click", function () { turn(-1); });
    next.addEventListener("click", function () { turn(1); });
    var initial = hashParams().get("q") || new URLSearchParams(location.search).get("h") || "";
    if (initial) { input.value = initial; matches = match(initial); }
    render();
  }

  function openFromHash() {
    var k = hashParams().get("k");
    if (!k) return;
    var cell = $('a.fv-cell[data-k="' + k.replace(/[^0-9a-f]/gi, "") + '"]');
    if (cell) open(cell);
  }

  function init() {
    $$(".fv-browser").forEach(initBrowser);
    openFromHash();
  }

  window.addEventListener("hashchange", openFromHash); // a pasted #k= link on the same page

  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(init); // Material's page-load stream (also fires with instant navigation)
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
