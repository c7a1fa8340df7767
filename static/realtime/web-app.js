// The console as an installable web app: its service worker gives an offline page
// (realtime/console/web_app.py). Browsers without service workers just do without.
if ("serviceWorker" in navigator) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/service-worker.js", { scope: "/" }).catch((error) => {
      console.warn("no offline page: the service worker could not register", error);
    });
  });
}
