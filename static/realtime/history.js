// /history/'s bulk acknowledgement: the button names how many rows are checked, a box in
// the header checks every row of the page, and more than the form's data-confirm-above
// asks first, in a dialog that names the number. The form posts as it would without
// this script (the server checks the same), and the page comes back with the result.
(() => {
  "use strict";
  const form = document.getElementById("acknowledge-many");
  const button = document.getElementById("acknowledge-selected");
  const all = document.getElementById("select-all");
  const dialog = document.getElementById("bulk-confirm");
  if (!form || !button) return;
  const confirmAbove = Number(form.dataset.confirmAbove || "10");
  // Numbers as the page's language writes them (the words: gettext, from /jsi18n/).
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  let confirmed = false;
  function say(format, values) {
    const shown = {};
    for (const [key, value] of Object.entries(values)) {
      shown[key] = typeof value === "number" ? numbers.format(value) : value;
    }
    return interpolate(format, shown, true);
  }

  function boxes() {
    return Array.from(document.querySelectorAll("#violation-rows input.select-violation"));
  }
  function checkedCount() {
    return boxes().filter((box) => box.checked).length;
  }
  function render() {
    const n = checkedCount();
    button.disabled = n === 0;
    // The live table's words (live.js): one wording for the same act on both pages.
    button.textContent = say(
      ngettext("Acknowledge selected (%(count)s)", "Acknowledge selected (%(count)s)", n),
      { count: n },
    );
    if (all) {
      const total = boxes().length;
      all.checked = total > 0 && n === total;
      all.indeterminate = n > 0 && n < total;
    }
  }

  document.addEventListener("change", (event) => {
    if (event.target === all) {
      boxes().forEach((box) => {
        box.checked = all.checked;
      });
    }
    if (event.target === all || event.target.matches("input.select-violation")) render();
  });
  if (all) all.closest("label").hidden = boxes().length === 0;

  form.addEventListener("submit", (event) => {
    const n = checkedCount();
    if (confirmed || n <= confirmAbove || !dialog) return;
    event.preventDefault();
    const question = ngettext(
      "Acknowledge %(count)s violation? It is recorded as acknowledged by you.",
      "Acknowledge these %(count)s violations? Each is recorded as acknowledged by you.",
      n,
    );
    document.getElementById("bulk-confirm-text").textContent = say(question, { count: n });
    document.getElementById("bulk-confirm-button").textContent = say(
      ngettext("Acknowledge %(count)s", "Acknowledge %(count)s", n),
      { count: n },
    );
    dialog.returnValue = "";
    dialog.showModal();
  });
  if (dialog) {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "confirm") return;
      confirmed = true;
      form.requestSubmit();
    });
  }
  render();
})();
