// narcotag review: keyboard shortcuts. No data is read from anywhere but the page's own DOM
// (data- attributes the server escaped); nothing is ever written back as HTML.
"use strict";

(function () {
  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    if (tag !== "input") return false;
    var type = (target.getAttribute("type") || "text").toLowerCase();
    return type !== "checkbox" && type !== "radio" && type !== "submit" && type !== "button";
  }

  function go(id) {
    var link = document.getElementById(id);
    if (link && link.href) window.location.assign(link.href);
  }

  function keyName(event) {
    var m = /^Digit([1-9])$/.exec(event.code || "");
    if (m) return (event.shiftKey ? "\u21e7" : "") + m[1];
    return event.key;
  }

  // --- record page -------------------------------------------------------------------------------
  function recordPage() {
    var form = document.getElementById("decide");
    var undo = document.getElementById("undo");
    var active = "drug";
    var label = document.getElementById("accept-label");

    function setGroup(name) {
      active = name;
      var groups = document.querySelectorAll("fieldset.group");
      for (var i = 0; i < groups.length; i++) {
        groups[i].classList.toggle("active", groups[i].getAttribute("data-group") === name);
      }
    }

    function changed() {
      var any = false;
      var boxes = form.querySelectorAll("input[type=checkbox]");
      for (var i = 0; i < boxes.length; i++) {
        var differs = String(boxes[i].checked) !== boxes[i].getAttribute("data-predicted");
        boxes[i].parentNode.classList.toggle("changed", differs);
        any = any || differs;
      }
      var fields = form.querySelectorAll("input[data-predicted]:not([type=checkbox])");
      for (var j = 0; j < fields.length; j++) {
        var a = fields[j].value.replace(/\s+/g, "").toUpperCase();
        var b = fields[j].getAttribute("data-predicted").replace(/\s+/g, "").toUpperCase();
        var same = a === b || (a !== "" && b !== "" && Number(a) === Number(b));
        fields[j].classList.toggle("changed", !same);
        any = any || !same;
      }
      if (label) label.textContent = any ? "save correction" : "accept";
    }

    function toggle(key) {
      var group = document.querySelector('fieldset.group[data-group="' + active + '"]');
      if (!group) return false;
      var choice = group.querySelector('label.choice[data-key="' + key + '"] input');
      if (!choice) return false;
      choice.checked = !choice.checked;
      changed();
      return true;
    }

    form.addEventListener("change", changed);
    form.addEventListener("input", changed);
    setGroup("drug");
    changed();

    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "Escape") { if (document.activeElement) document.activeElement.blur(); return; }
      if (typing(event.target)) return;
      var key = keyName(event);
      var handled = true;
      if (key === "j") go("nav-next");
      else if (key === "k") go("nav-prev");
      else if (key === "a") form.requestSubmit ? form.requestSubmit() : form.submit();
      else if (key === "u") undo.requestSubmit ? undo.requestSubmit() : undo.submit();
      else if (key === "d") setGroup("drug");
      else if (key === "h") setGroup("hint");
      else handled = toggle(key);
      if (handled) event.preventDefault();
    });
  }

  // --- queue page --------------------------------------------------------------------------------
  function queuePage() {
    var rows = document.querySelectorAll("#queue tr.row");
    var at = -1;
    function select(i) {
      if (!rows.length) return;
      at = Math.max(0, Math.min(rows.length - 1, i));
      for (var r = 0; r < rows.length; r++) rows[r].classList.toggle("selected", r === at);
      rows[at].scrollIntoView({ block: "nearest" });
    }
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "Escape") { if (document.activeElement) document.activeElement.blur(); return; }
      if (typing(event.target)) return;
      if (event.key === "j") select(at + 1);
      else if (event.key === "k") select(at - 1);
      else if (event.key === "Enter" && at >= 0) window.location.assign(rows[at].getAttribute("data-href"));
      else if (event.key === "/") { var q = document.getElementById("q"); if (q) q.focus(); }
      else return;
      event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.getAttribute("data-page");
    if (page === "record") recordPage();
    else if (page === "queue") queuePage();
  });
})();
