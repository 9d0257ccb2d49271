// civicflow's own script for the dashboard (no build step; served by the binary).
// Live updates: an element with data-live-stream listens to that server-sent event stream (the
// API's own, authenticated by the session cookie) and, on each event of the types it names,
// has htmx fetch data-live-refresh and swap it in place. An element that says which version
// it shows (data-live-version) is not fetched again for the events up to it: a stream replays
// its history when it connects, and the page shows that already (fetching it again would
// weigh the page down and put fresh forms over what someone has started to type). Nothing
// here is inline: the page's Content-Security-Policy allows only this service's own script
// files.
(function () {
  "use strict";

  function follow(element) {
    var url = element.getAttribute("data-live-stream");
    var types = (element.getAttribute("data-live-types") || "").split(" ").filter(Boolean);
    var status = document.getElementById(element.getAttribute("data-live-status") || "");
    var source = new EventSource(url);
    var refresh = function (event) {
      var target = document.getElementById(element.id);
      if (!target || !window.htmx) { return; }
      var shown = Number(target.getAttribute("data-live-version"));
      var id = Number(event && event.lastEventId);
      if (shown && id && id <= shown) { return; }
      window.htmx.ajax("GET", element.getAttribute("data-live-refresh"), {
        target: target,
        swap: "outerHTML"
      });
    };
    var said = function (text, state) {
      if (status) {
        status.textContent = text;
        status.setAttribute("data-state", state);
      }
    };
    source.addEventListener("open", function () { said("实时更新已连接 Live updates on", "open"); });
    source.addEventListener("error", function () {
      said("实时更新已断开，正在重连 Live updates lost; reconnecting", "lost");
    });
    types.forEach(function (type) { source.addEventListener(type, refresh); });
  }

  function start() {
    var elements = document.querySelectorAll("[data-live-stream]");
    for (var i = 0; i < elements.length; i++) { follow(elements[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
