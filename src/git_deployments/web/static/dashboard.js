// The dashboard's one script: keeps an open page current and its relative times fresh.
//
// Every second it asks for the page again with If-None-Match; the server answers 304 (nothing
// read, nothing sent) until a ref the page depends on moves, then the new page, whose live
// parts ([data-live] with an id) replace the old ones. A part holding the focused form field is
// left for the next round, so nobody's typing is lost. Nothing here builds HTML from text: the
// parts come parsed from the server's page, where every record's text is escaped.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var body = document.body;
  var etag = body.getAttribute("data-etag") || "";
  var serverNow = Date.parse(body.getAttribute("data-now") || "");
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();
  var busy = false;

  function now() {
    return Date.now() + skew;
  }

  var UNITS = [
    ["year", 31536000], ["month", 2592000], ["week", 604800],
    ["day", 86400], ["hour", 3600], ["minute", 60]
  ];

  // the server's wording (core/timeutil.relative): "3 days ago", "in 2 hours", "just now"
  function relative(moment) {
    var delta = Math.round((now() - moment) / 1000);
    var future = delta < 0;
    delta = Math.abs(delta);
    if (delta < 45) {
      return "just now";
    }
    var unit = "minute";
    var count = 1;
    for (var i = 0; i < UNITS.length; i++) {
      if (delta >= UNITS[i][1]) {
        unit = UNITS[i][0];
        count = unit === "year" ? Math.floor(delta / UNITS[i][1])
                                : Math.round(delta / UNITS[i][1]);
        break;
      }
    }
    var text = count + " " + unit + (count === 1 ? "" : "s");
    return future ? "in " + text : text + " ago";
  }

  function refreshTimes(root) {
    var times = root.querySelectorAll("time[data-relative]");
    for (var i = 0; i < times.length; i++) {
      var moment = Date.parse(times[i].getAttribute("datetime"));
      if (!isNaN(moment)) {
        times[i].textContent = relative(moment);
      }
    }
  }

  function holdsInput(region) {
    var active = document.activeElement;
    if (!active || !region.contains(active)) {
      return false;
    }
    var tag = active.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var complete = true;
    var regions = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < regions.length; i++) {
      var region = regions[i];
      var replacement = fresh.getElementById(region.id);
      if (!replacement) {
        continue;
      }
      if (holdsInput(region)) {
        complete = false;
        continue;
      }
      var focusedId = document.activeElement && region.contains(document.activeElement)
        ? document.activeElement.id : "";
      var adopted = document.importNode(replacement, true);
      region.replaceWith(adopted);
      refreshTimes(adopted);
      if (focusedId) {
        var again = document.getElementById(focusedId);
        if (again) {
          again.focus();
        }
      }
    }
    var title = fresh.querySelector("title");
    if (title) {
      document.title = title.textContent;
    }
    return complete;
  }

  function poll() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    var headers = {"Accept": "text/html"};
    if (etag) {
      headers["If-None-Match"] = etag;
    }
    fetch(window.location.href, {headers: headers, cache: "no-store",
                                 credentials: "same-origin", redirect: "error"})
      .then(function (response) {
        if (response.status !== 200) {
          return null;
        }
        var tag = response.headers.get("ETag");
        return response.text().then(function (html) {
          if (swap(html) && tag) {
            etag = tag;  // else the same page is asked for again, to finish the swap
          }
        });
      })
      .catch(function () { /* offline for a moment: the next round asks again */ })
      .then(function () { busy = false; });
  }

  if (window.fetch && window.DOMParser && etag) {
    window.setInterval(poll, POLL_MS);
    document.addEventListener("visibilitychange", poll);
  }
  refreshTimes(document);
  window.setInterval(function () { refreshTimes(document); }, 15000);
})();
