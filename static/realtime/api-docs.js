// The API's docs page (/api/v1/docs): swagger-ui with the settings the server wrote, and a
// login's CSRF token on the requests "Try it out" sends (a token's requests need none).
(() => {
  const settings = JSON.parse(document.getElementById("swagger-settings").textContent);
  const csrfToken = document.body.dataset.csrfToken;
  window.SwaggerUIBundle({
    ...settings,
    dom_id: "#swagger-ui",
    presets: [window.SwaggerUIBundle.presets.apis],
    requestInterceptor: (request) => {
      if (csrfToken) {
        request.headers["X-CSRFToken"] = csrfToken;
      }
      return request;
    },
  });
})();
