// The metrics page's charts: each [data-chart] element holds its data as JSON text (an
// attribute the server escaped like any other; read back here with getAttribute, parsed, never
// inserted as HTML) and is drawn with the vendored uPlot. When dashboard.js swaps in a fresh
// part of the page, the new chart elements are drawn too.
(function () {
  "use strict";

  var HEIGHT = 240;
  var PALETTE = ["#1f6fd1", "#c2410c", "#15803d", "#9333ea", "#0e7490", "#be123c",
                 "#854d0e", "#4d7c0f"];
  var drawn = [];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name);
    return value ? value.trim() : fallback;
  }

  function fromZero(u, min, max) {
    if (max === null || max === undefined || !isFinite(max) || max <= 0) {
      return [0, 1];
    }
    return [0, max * 1.1];
  }

  function widthOf(element) {
    return Math.max(240, Math.floor(element.clientWidth || 600));
  }

  function draw(element) {
    if (element.getAttribute("data-drawn") === "1" || !window.uPlot) {
      return;
    }
    var spec;
    try {
      spec = JSON.parse(element.getAttribute("data-chart") || "");
    } catch (error) {
      return;
    }
    if (!spec || !spec.x || !spec.series) {
      return;
    }
    element.setAttribute("data-drawn", "1");
    var text = cssVar("--muted", "#5c6370");
    var grid = cssVar("--border", "#d7dae0");
    var data = [spec.x];
    var series = [{label: "week of"}];
    for (var i = 0; i < spec.series.length; i++) {
      var last = spec.series.length > 1 && i === spec.series.length - 1;
      data.push(spec.series[i].values);
      series.push({
        label: spec.series[i].label,
        stroke: PALETTE[i % PALETTE.length],
        width: last ? 3 : 2,
        dash: last ? [6, 4] : undefined,
        points: {show: true, size: 6},
        spanGaps: false
      });
    }
    var options = {
      width: widthOf(element),
      height: HEIGHT,
      series: series,
      tzDate: function (seconds) { return window.uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"); },
      scales: {x: {time: true}, y: {range: fromZero}},
      axes: [
        {stroke: text, grid: {stroke: grid, width: 1}, ticks: {stroke: grid}},
        {stroke: text, grid: {stroke: grid, width: 1}, ticks: {stroke: grid}, label: spec.unit,
         labelSize: 20}
      ],
      legend: {show: true}
    };
    drawn.push({element: element, plot: new window.uPlot(options, data, element)});
  }

  function drawAll() {
    // charts whose element left the page (a live swap) are let go first
    drawn = drawn.filter(function (chart) {
      if (document.body.contains(chart.element)) {
        return true;
      }
      chart.plot.destroy();
      return false;
    });
    var elements = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < elements.length; i++) {
      draw(elements[i]);
    }
  }

  var resizing = null;
  function resize() {
    if (resizing !== null) {
      window.clearTimeout(resizing);
    }
    resizing = window.setTimeout(function () {
      resizing = null;
      for (var i = 0; i < drawn.length; i++) {
        drawn[i].plot.setSize({width: widthOf(drawn[i].element), height: HEIGHT});
      }
    }, 100);
  }

  drawAll();
  window.addEventListener("resize", resize);
  // a live swap replaces whole sections of <main>: watching its children is enough (the
  // charts' own changes, such as the legend following the cursor, are not watched)
  var main = document.getElementById("main");
  if (window.MutationObserver && main) {
    new MutationObserver(drawAll).observe(main, {childList: true});
  }
})();
