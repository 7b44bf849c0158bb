"use strict";
(function () {
  document.querySelectorAll("button.reveal").forEach(function (button) {
    button.addEventListener("click", function () {
      var shown = button.getAttribute("aria-pressed") === "true";
      button.setAttribute("aria-pressed", shown ? "false" : "true");
    });
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) { return; }
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var step = { j: 1, ArrowDown: 1, k: -1, ArrowUp: -1 }[event.key];
    if (!step) { return; }
    var groups = Array.prototype.slice.call(document.querySelectorAll("section.group"));
    if (!groups.length) { return; }
    var current = groups.findIndex(function (g) { return g.contains(document.activeElement); });
    var next = current < 0 ? 0 : Math.min(groups.length - 1, Math.max(0, current + step));
    groups[next].focus();
    groups[next].scrollIntoView({ block: "nearest" });
    event.preventDefault();
  });
})();
