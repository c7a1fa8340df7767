// The offline page comes back to the console by itself once the server answers again
// (/healthz needs no login; any answer, even "degraded", means the server is reachable).
const RETRY_MS = 10000;

function tryAgain() {
  fetch("/healthz", { cache: "no-store" }).then(
    () => window.location.assign("/"),
    () => window.setTimeout(tryAgain, RETRY_MS),
  );
}

window.addEventListener("online", tryAgain);
window.setTimeout(tryAgain, RETRY_MS);
