// A violation's detail (its page, and the live table's dialog): what its forms are told
// when the server refuses (a 400 says why in plain text), shown beside the forms.
document.body.addEventListener("htmx:responseError", (event) => {
  const form = event.detail.elt;
  const section = form?.closest ? form.closest(".detail-act") : null;
  if (!section) return;
  const error = section.querySelector(".detail-act-error");
  if (error) error.textContent = event.detail.xhr.responseText || gettext("The server refused it.");
});
