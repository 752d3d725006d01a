// A decision is sent once: after the first submit the form's buttons are disabled, so a second
// click cannot send a second (refused) request. The server stays the judge either way.
(function () {
  "use strict";
  document.querySelectorAll("form.action, form.comment-form, form.bulk").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-submitting") === "true") {
        event.preventDefault();
        return;
      }
      form.setAttribute("data-submitting", "true");
      form.setAttribute("aria-busy", "true");
      // Disabled after this turn of the event loop: the pressed button's name and value
      // (e.g. then=next) are already part of the request being sent.
      window.setTimeout(function () {
        form.querySelectorAll("button").forEach(function (button) {
          button.disabled = true;
        });
      }, 0);
    });
  });
  // Back/forward cache: a page shown again must be usable again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[data-submitting]").forEach(function (form) {
      form.removeAttribute("data-submitting");
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button").forEach(function (button) { button.disabled = false; });
    });
  });
})();
