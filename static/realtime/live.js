// The live table: rows arrive as server-rendered <tr> over SSE (htmx + htmx-ext-sse).
// This script keeps each row on the page once, shows the connection state, resumes from
// the last event seen, and plays one alert per burst, in one tab.
(() => {
  "use strict";

  const stream = document.querySelector("[sse-connect]");
  if (!stream) return;

  // Words come from the page's catalog (/jsi18n/, gettext and friends, in the request's
  // language); numbers are written as that language writes them. Should the catalog fail
  // to load, the page speaks English rather than stop (and with it the alarm).
  const gettext = window.gettext || ((text) => text);
  const ngettext = window.ngettext || ((one, many, count) => (count === 1 ? one : many));
  const pgettext = window.pgettext || ((_context, text) => text);
  const interpolate =
    window.interpolate ||
    ((format, values) => format.replace(/%\((\w+)\)s/g, (_all, key) => String(values[key])));
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  // interpolate() with named placeholders, so that a translation can reorder them.
  function say(format, values) {
    const shown = {};
    for (const [key, value] of Object.entries(values)) {
      shown[key] = typeof value === "number" ? numbers.format(value) : value;
    }
    return interpolate(format, shown, true);
  }

  const stateLabel = document.getElementById("connection-state");
  const seenEvents = new Set();
  const SEEN_LIMIT = 5000;
  let lastEventId = stream.dataset.lastEventId || "";

  // --- connection state ---------------------------------------------------------------
  // "Live" only while something arrives: a row, or the heartbeat every stream sends when
  // it has been quiet for `heartbeatSeconds`, which also says whether the pipeline behind
  // the server is live (realtime/pipeline.py). A server that froze with its connections
  // open sends nothing, and no browser notices: after 2.5 heartbeats of silence the page
  // says "Stale" and opens a new stream, which resumes from the last event seen.
  const STATES = {
    connecting: pgettext("connection state", "Connecting…"),
    live: pgettext("connection state", "Live"),
    reconnecting: pgettext("connection state", "Reconnecting…"),
    stale: pgettext("connection state", "Stale"),
    offline: pgettext("connection state", "Offline"),
  };
  const heartbeatMs = 1000 * (Number(stream.dataset.heartbeatSeconds) || 10);
  const STALE_AFTER_MS = 2.5 * heartbeatMs;
  const pageTitle = document.title;
  let transport = "connecting"; // connecting, open or reconnecting: the EventSource's
  let heardAt = Date.now();
  let pipelineDown = ""; // why the pipeline is not live, from the last heartbeat
  let source = null;

  function silentMs() {
    return Date.now() - heardAt;
  }

  function currentState() {
    if (!navigator.onLine) return ["offline", gettext("the browser is offline")];
    if (transport !== "connecting" && silentMs() > STALE_AFTER_MS) {
      const seconds = Math.round(silentMs() / 1000);
      const format = ngettext(
        "nothing from the server for %(seconds)s s",
        "nothing from the server for %(seconds)s s",
        seconds,
      );
      return ["stale", say(format, { seconds })];
    }
    if (transport === "reconnecting") return ["reconnecting", ""];
    if (transport === "connecting") return ["connecting", ""];
    if (pipelineDown) return ["stale", pipelineDown];
    return ["live", ""];
  }

  function render() {
    if (!stateLabel) return;
    const [state, why] = currentState();
    const text = why
      ? say(gettext("%(state)s: %(why)s"), { state: STATES[state], why })
      : STATES[state];
    if (stateLabel.textContent !== text) stateLabel.textContent = text;
    stateLabel.className = `connection-state state-${state}`;
    document.body.dataset.connection = state;
    document.title =
      state === "live"
        ? pageTitle
        : say(gettext("%(state)s · %(title)s"), { state: STATES[state], title: pageTitle });
  }

  function heard() {
    heardAt = Date.now();
    render();
  }

  // htmx-ext-sse opens a new EventSource after a fatal error, and a new one sends no
  // Last-Event-ID: carry it in the URL so the page still gets what it missed.
  htmx.createEventSource = (url) => {
    const resumed = new URL(url, window.location.href);
    if (lastEventId) resumed.searchParams.set("lastEventId", lastEventId);
    source = new EventSource(resumed, { withCredentials: true });
    source.addEventListener("message", heard);
    source.addEventListener("stream-open", heard);
    // Behind Pushpin, Pushpin holds the stream and sends django-eventstream's keep-alive
    // (every 20 s) instead: proof of a live connection, without the pipeline's state.
    source.addEventListener("keep-alive", heard);
    // An operator shelved or unshelved a camera: read the panel again.
    source.addEventListener("shelves", () => {
      heard();
      refreshShelves();
    });
    // The server says why in English for every client alike, and with a code that the
    // page says in its own language.
    function whyDown(beat) {
      switch (beat.code) {
        case "database":
          return gettext("the database cannot be reached");
        case "no-listener":
          return gettext("no listener is forwarding changes");
        case "behind":
          return say(gettext("the listener is %(seconds)s s behind"), {
            seconds: beat.lag_seconds,
          });
        case "unheard":
          return gettext("this server hears nothing from the listener");
        default:
          return beat.reason || gettext("the pipeline is down");
      }
    }
    source.addEventListener("heartbeat", (event) => {
      try {
        const beat = JSON.parse(event.data);
        pipelineDown = beat.pipeline === "live" ? "" : whyDown(beat);
      } catch {
        pipelineDown = "";
      }
      heard();
    });
    return source;
  };

  // A stream that stays silent is given up: close it and let htmx-ext-sse open a new one
  // (its error handler reconnects a closed EventSource), at most once per stale period.
  let givenUpAt = 0;
  function reconnectIfSilent() {
    render();
    const now = Date.now();
    if (!source || transport !== "open" || silentMs() <= STALE_AFTER_MS) return;
    if (now - givenUpAt < STALE_AFTER_MS) return;
    givenUpAt = now;
    const silent = source;
    silent.close();
    if (silent.onerror) silent.onerror(new Event("error"));
  }
  setInterval(reconnectIfSilent, 1000);

  document.body.addEventListener("htmx:sseOpen", () => {
    transport = "open";
    heard();
    refreshShelves(); // what changed while the stream was away
  });
  document.body.addEventListener("htmx:sseError", () => {
    transport = "reconnecting";
    render();
  });
  window.addEventListener("offline", render);
  window.addEventListener("online", render);

  // --- rows ---------------------------------------------------------------------------
  function parseRow(html) {
    const template = document.createElement("template");
    template.innerHTML = `<table><tbody>${html}</tbody></table>`;
    return template.content.querySelector("tr");
  }

  function remember(eventId) {
    seenEvents.add(eventId);
    if (seenEvents.size > SEEN_LIMIT) {
      seenEvents.delete(seenEvents.values().next().value);
    }
  }

  // Counters show unacknowledged violations of a recent window (the server re-reads
  // them every minute, as rows age out of it): count what a change does to that number.
  // A shelved camera's violations are not counted.
  function unacknowledged(row) {
    return row && !row.classList.contains("acknowledged") && !row.classList.contains("shelved")
      ? 1
      : 0;
  }
  function inWindow(row) {
    const counters = document.getElementById("counters");
    const since = counters ? counters.dataset.since || "" : "";
    return !since || (row.dataset.at || "") >= since;
  }
  function countChange(before, after) {
    const row = after || before;
    const delta = unacknowledged(after) - unacknowledged(before);
    const counter = document.querySelector(`.count[data-kind="${row.dataset.kind}"]`);
    if (counter && delta && inWindow(row)) {
      counter.textContent = String(Math.max(0, Number(counter.textContent) + delta));
    }
  }

  // The row on the page for the same violation: a live one by its id, or one the admin
  // drew, by the violation's mark in its first cell.
  function shownRow(row) {
    const byId = document.getElementById(row.id);
    if (byId) return byId;
    const mark = row.querySelector("[data-violation]");
    if (!mark) return null;
    const drawn = document.querySelector(
      `#result_list [data-violation="${mark.dataset.violation}"]`,
    );
    return drawn ? drawn.closest("tr") : null;
  }

  document.body.addEventListener("htmx:sseBeforeMessage", (event) => {
    const message = event.detail;
    if (message.type === "stream-reset") {
      // The events since this page was drawn are no longer in the log: draw it anew.
      event.preventDefault();
      window.location.reload();
      return;
    }
    if (message.lastEventId) lastEventId = message.lastEventId;
    const row = parseRow(message.data);
    if (!row) return;
    const eventId = row.dataset.eventId;
    // Replays after a reconnect bring events already handled: drop them.
    if (seenEvents.has(eventId)) {
      event.preventDefault();
      return;
    }
    remember(eventId);
    const existing = shownRow(row);
    const op = row.dataset.op;
    if (op === "DELETE") {
      countChange(existing || row, null);
      if (existing) existing.remove();
      event.preventDefault();
      return;
    }
    if (op === "UPDATE" || op === "STATE" || existing) {
      // An update, or an acknowledgement (STATE), replaces its row in place; one of a
      // row not shown is not news, and makes no sound.
      if (existing && op !== "INSERT") {
        countChange(existing, row);
        existing.replaceWith(row);
        htmx.process(row);
        refreshDetail(row.id);
      }
      event.preventDefault();
      return;
    }
    const placeholder = document.getElementById("no-rows");
    if (placeholder) placeholder.remove();
    if (!document.querySelector("#result_list tbody")) {
      window.location.reload(); // an empty admin changelist has no table to add to
      return;
    }
    let place = "top"; // where htmx puts it: rows without the pages' order (the admin's)
    if (row.dataset.sort) {
      event.preventDefault();
      place = placeRow(row);
    }
    const late = place !== "top";
    if (late) markLate(row, place);
    countChange(null, row);
    growTrend(row);
    if (!row.classList.contains("shelved")) {
      // Listed either way; a shelved camera's row is silent and notifies nobody.
      alertSound(row.dataset.kind);
      notifyLater(row);
      announce(row, late);
    }
  });

  // --- one order, live and after a reload ------------------------------------------------
  // A row goes where a reload puts it (data-sort: the pages' order as one text, newest
  // first). One older than the newest row shown arrived late (a detector catching up): it
  // is marked, and a notice links to it; one older than every row loaded, with older pages
  // not loaded, belongs on those pages: the notice opens its detail.
  function placeRow(row) {
    const body = document.getElementById("violation-rows");
    if (!body) return "top";
    const rows = body.querySelectorAll("tr.violation");
    const key = row.dataset.sort;
    for (let i = 0; i < rows.length; i++) {
      if ((rows[i].dataset.sort || "") < key) {
        rows[i].before(row);
        htmx.process(row);
        return i === 0 ? "top" : "within";
      }
    }
    if (rows.length === 0) {
      body.prepend(row);
      htmx.process(row);
      return "top";
    }
    if (body.querySelector("tr.load-older")) return "beyond";
    rows[rows.length - 1].after(row);
    htmx.process(row);
    return "within";
  }

  function markLate(row, place) {
    row.classList.add("is-late");
    const cell = row.querySelector("td.field-kind");
    if (cell && !cell.querySelector(".late-mark")) {
      const mark = document.createElement("span");
      mark.className = "late-mark";
      mark.textContent = gettext("late");
      mark.title = gettext("Arrived after newer violations: a detector caught up");
      cell.append(mark);
    }
    const target = rowTarget(row);
    const text = say(gettext("Late violation: %(violation)s (arrived after newer ones)."), {
      violation: describe(row),
    });
    showNotice(text, {
      late: true,
      action: place === "beyond" ? gettext("Open it") : gettext("Show it"),
      onAction: () => {
        if (place !== "beyond" && row.isConnected) focusRow(row.id);
        else if (target) openDetail(target[0], target[1], null);
      },
    });
  }

  // --- screen readers ------------------------------------------------------------------
  // One announcement per burst, as for the sound: the newest, and how many came with it.
  const announcer = document.getElementById("announcer");
  let spoken = [];
  let spokenTimer = null;
  function announce(row, late) {
    if (!announcer) return;
    spoken.push([row, late]);
    if (spokenTimer) return;
    spokenTimer = setTimeout(() => {
      const [newest, newestLate] = spoken[spoken.length - 1];
      const count = spoken.length;
      const late = spoken.filter(([, isLate]) => isLate).length;
      const what = newestLate
        ? gettext("Late violation: %(violation)s.")
        : gettext("New violation: %(violation)s.");
      const sentences = [say(what, { violation: describe(newest) })];
      if (count > 1 && late) {
        const format = ngettext(
          "%(count)s new violation, %(late)s of them late.",
          "%(count)s new violations, %(late)s of them late.",
          count,
        );
        sentences.push(say(format, { count, late }));
      } else if (count > 1) {
        const format = ngettext("%(count)s new violation.", "%(count)s new violations.", count);
        sentences.push(say(format, { count }));
      }
      announcer.textContent = sentences.join(" ");
      spoken = [];
      spokenTimer = null;
    }, BURST_MS);
  }

  // --- notices -----------------------------------------------------------------------
  // A notice stays UNDO_NOTICE_MS at least (an Undo must be reachable), or until dismissed.
  const notices = document.getElementById("live-notices");
  const NOTICE_MS = 15000;
  function showNotice(text, { late = false, action = "", onAction = null } = {}) {
    if (!notices) return null;
    const notice = document.createElement("div");
    notice.className = late ? "live-notice is-late" : "live-notice";
    notice.setAttribute("role", "status");
    const words = document.createElement("span");
    words.textContent = text;
    notice.append(words);
    if (action && onAction) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = action;
      button.addEventListener("click", () => {
        onAction(notice);
      });
      notice.append(button);
    }
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "dismiss";
    dismiss.textContent = "×";
    dismiss.setAttribute("aria-label", gettext("Dismiss"));
    dismiss.addEventListener("click", () => {
      notice.remove();
    });
    notice.append(dismiss);
    notices.prepend(notice);
    while (notices.children.length > 3) notices.lastElementChild.remove();
    setTimeout(() => {
      notice.remove();
    }, NOTICE_MS);
    return notice;
  }

  // --- shelved cameras ------------------------------------------------------------------
  // The panel (GET /shelves/) is read again when the stream says the shelves changed, when
  // it reconnects, and when the first shelf ends by itself (and every minute, by htmx).
  let shelfTimer = null;
  function refreshShelves() {
    const panel = document.getElementById("shelves");
    if (panel) htmx.trigger(panel, "shelves-refresh");
  }
  function watchShelfEnd() {
    const panel = document.getElementById("shelves");
    if (shelfTimer) clearTimeout(shelfTimer);
    shelfTimer = null;
    const seconds = panel ? Number(panel.dataset.nextEnd) : NaN;
    if (!panel?.dataset.nextEnd || Number.isNaN(seconds)) return;
    shelfTimer = setTimeout(refreshShelves, Math.max(0, seconds) * 1000 + 500);
  }
  let watchedPanel = document.getElementById("shelves");
  watchShelfEnd();
  document.body.addEventListener("htmx:afterSettle", () => {
    const panel = document.getElementById("shelves");
    if (panel === watchedPanel) return;
    watchedPanel = panel; // drawn anew (hx-swap="outerHTML")
    watchShelfEnd();
  });
  // A refused shelving says why beside the form (the panel stays as it was).
  document.body.addEventListener("htmx:responseError", (event) => {
    const form = event.detail.elt;
    if (!form?.closest?.("#shelves")) return;
    const error = document.querySelector("#shelves .shelve-error");
    if (error) error.textContent = event.detail.xhr.responseText || gettext("Could not shelve.");
  });

  // --- the trend chart ------------------------------------------------------------------
  // A new row adds one to its hour's bar (the server drew the chart; it re-draws it every
  // minute, and at once when a bar would outgrow the scale or a new hour begins).
  function refreshTrend(trend) {
    htmx.trigger(trend, "trend-refresh");
  }
  function restack(bar, pxPer, base) {
    let top = base;
    let total = 0;
    bar.querySelectorAll(".trend-segment").forEach((segment) => {
      const count = Number(segment.dataset.count);
      const height = count * pxPer;
      top -= height;
      total += count;
      segment.querySelectorAll("rect").forEach((rect) => {
        rect.setAttribute("y", top.toFixed(2));
        rect.setAttribute("height", height.toFixed(2));
      });
    });
    const label = bar.querySelector(".trend-total");
    if (label) {
      label.textContent = total ? String(total) : "";
      label.setAttribute("y", (top - 3).toFixed(2));
    }
    return total;
  }
  function growTrend(row) {
    const trend = document.getElementById("trend");
    if (!trend || trend.dataset.live !== "1" || !row.dataset.at) return;
    const key = row.dataset.at.slice(0, 13); // 2025-03-01T10, the hour's bucket
    const bar = trend.querySelector(`.trend-bar[data-bucket="${key}"]`);
    if (!bar) {
      if (key > (trend.dataset.lastBucket || "")) refreshTrend(trend); // a new hour
      return;
    }
    const segment = bar.querySelector(`.trend-segment[data-kind="${row.dataset.kind}"]`);
    if (!segment) return;
    const count = Number(segment.dataset.count) + 1;
    segment.dataset.count = String(count);
    const title = segment.querySelector("title");
    if (title) title.textContent = `${segment.dataset.label}: ${count}`;
    const total = restack(bar, Number(trend.dataset.px), Number(trend.dataset.base));
    const cell = trend.querySelector(
      `tr[data-bucket="${key}"] td[data-kind="${row.dataset.kind}"]`,
    );
    if (cell) {
      cell.textContent = String(count);
      const rowTotal = cell.parentElement.querySelector(".trend-row-total");
      if (rowTotal) rowTotal.textContent = String(total);
    }
    const all = trend.querySelector(".trend-count");
    if (all) all.textContent = String(Number(all.textContent) + 1);
    if (total > Number(trend.dataset.scaleMax)) refreshTrend(trend);
  }

  // "Acknowledge" answers with the row as it now is; it replaces the one clicked.
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (!target.matches?.("tr.violation") || !event.detail.serverResponse) return;
    if (!target.isConnected) {
      // The acknowledgement came over the stream first and re-drew the row already.
      event.detail.shouldSwap = false;
      return;
    }
    const row = parseRow(event.detail.serverResponse);
    if (row) countChange(target, row);
  });

  // "Load older" may return rows that moved down since: keep the first of each.
  document.body.addEventListener("htmx:afterSwap", () => {
    const ids = new Set();
    document.querySelectorAll("tr[id^='violation-']").forEach((tr) => {
      if (ids.has(tr.id)) tr.remove();
      else ids.add(tr.id);
    });
  });

  // --- a row's detail ------------------------------------------------------------------
  // Clicking a row (anywhere but its controls) or its #id link opens the violation's
  // detail in a dialog; Escape or "Close" closes it, and focus goes back where it was. The
  // page's URL then ends in #detail=KIND/ID: shared, it opens the same detail.
  const dialog = document.getElementById("violation-dialog");
  const dialogBody = document.getElementById("violation-dialog-body");
  const dialogPage = document.getElementById("violation-dialog-page");
  const CONTROLS = "a, button, input, select, textarea, label, summary, form";
  let openedFrom = null;

  function detailUrl(kind, id) {
    return `/violations/${encodeURIComponent(kind)}/${encodeURIComponent(id)}/`;
  }
  function openDetail(kind, id, from) {
    if (!dialog || !dialogBody) return;
    const url = detailUrl(kind, id);
    htmx.ajax("GET", url, { target: dialogBody, swap: "innerHTML" }).then(() => {
      dialog.dataset.row = `violation-${kind}-${id}`;
      if (dialogPage) dialogPage.href = url;
      openedFrom = from || document.activeElement;
      if (!dialog.open) dialog.showModal();
      history.replaceState(null, "", `#detail=${kind}/${id}`);
    });
  }
  function rowTarget(tr) {
    const match = /^violation-([a-z0-9_-]+)-([0-9]+)$/.exec(tr.id || "");
    return match ? [match[1], match[2]] : null;
  }
  const rowsBody = document.getElementById("violation-rows");
  if (dialog && rowsBody) {
    rowsBody.addEventListener("click", (event) => {
      const tr = event.target.closest("tr.violation");
      if (!tr) return;
      const link = event.target.closest("a.row-link");
      if (!link && event.target.closest(CONTROLS)) return;
      if (link && (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0)) return;
      const target = rowTarget(tr);
      if (!target) return;
      event.preventDefault();
      openDetail(target[0], target[1], link || tr.querySelector("a.row-link"));
    });
    dialog.addEventListener("close", () => {
      delete dialog.dataset.row;
      history.replaceState(null, "", window.location.pathname + window.location.search);
      if (openedFrom?.isConnected) openedFrom.focus();
    });
    const openShared = () => {
      const shared = /^#detail=([a-z0-9_-]+)\/([0-9]+)$/.exec(window.location.hash);
      if (shared) openDetail(shared[1], shared[2], null);
    };
    openShared();
    window.addEventListener("hashchange", openShared);
  }
  // A change to the row of the open detail (an acknowledgement, a note) re-draws it too,
  // but not under the operator's hands: while they are in one of its forms, their own
  // action's answer re-draws it (and a refusal stays in view).
  function refreshDetail(rowId) {
    if (!dialog?.open || dialog.dataset.row !== rowId) return;
    const active = document.activeElement;
    if (active?.closest?.("#violation-dialog-body form")) return;
    const match = /^violation-([a-z0-9_-]+)-([0-9]+)$/.exec(rowId);
    if (match) {
      htmx.ajax("GET", detailUrl(match[1], match[2]), { target: dialogBody, swap: "innerHTML" });
    }
  }

  // --- ages ---------------------------------------------------------------------------
  // "3 min ago" beside each row's time, kept current. The detectors' times are the plant's
  // local time, as is the page's data-local-now (whatever the browser's own time zone):
  // both are read as if UTC, and the browser's clock only measures what passed since.
  const localNow = Date.parse(`${stream.dataset.localNow || ""}Z`);
  const loadedAt = Date.now();
  function ageSeconds(at) {
    const then = Date.parse(`${at}Z`);
    if (Number.isNaN(then) || Number.isNaN(localNow)) return NaN;
    return Math.floor((localNow + (Date.now() - loadedAt) - then) / 1000);
  }
  function age(at) {
    const seconds = ageSeconds(at);
    if (Number.isNaN(seconds) || seconds < -60) return "";
    if (seconds < 60) return gettext("just now");
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) {
      return say(ngettext("%(minutes)s min ago", "%(minutes)s min ago", minutes), { minutes });
    }
    const hours = Math.floor(minutes / 60);
    if (hours < 48) {
      // Translators: an age of 1 to 47 hours, as "5 h 12 min ago" (units abbreviated).
      return say(gettext("%(hours)s h %(minutes)s min ago"), { hours, minutes: minutes % 60 });
    }
    const days = Math.floor(hours / 24);
    return say(ngettext("%(days)s day ago", "%(days)s days ago", days), { days });
  }
  function renderAges(root) {
    (root || document).querySelectorAll("tr.violation[data-at] .age").forEach((span) => {
      const text = age(span.closest("tr").dataset.at);
      if (span.textContent !== text) span.textContent = text;
    });
  }
  renderAges();
  setInterval(renderAges, 15000);
  // Rows drawn since (live, re-drawn, "Load older") get theirs at once.
  const ageRows = document.getElementById("violation-rows");
  if (ageRows && window.MutationObserver) {
    new MutationObserver(() => {
      renderAges(ageRows);
    }).observe(ageRows, { childList: true });
  }

  // --- acknowledging several at once ------------------------------------------------
  // Each button names the number it acts on: the rows selected, or the open rows wholly in
  // view (never rows scrolled out of sight). More than CONFIRM_OVER asks first, naming the
  // number; what was acknowledged can be undone from a notice (REALTIME_UNDO_SECONDS).
  const bulkForm = document.getElementById("acknowledge-many");
  const bulkSelected = document.getElementById("acknowledge-selected");
  const bulkVisible = document.getElementById("acknowledge-visible");
  const bulkResult = document.getElementById("bulk-result");
  const confirmDialog = document.getElementById("bulk-confirm");
  const CONFIRM_OVER = 10;

  function selectedBoxes() {
    return [...document.querySelectorAll("#violation-rows input.select-violation:checked")];
  }
  function boxesInView() {
    return [...document.querySelectorAll("#violation-rows input.select-violation")].filter(
      (box) => {
        if (box.offsetParent === null) return false;
        const r = box.closest("tr").getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight;
      },
    );
  }
  function renderSelection() {
    const selected = selectedBoxes().length;
    if (bulkSelected) {
      bulkSelected.disabled = selected === 0;
      bulkSelected.textContent = say(
        ngettext("Acknowledge selected (%(count)s)", "Acknowledge selected (%(count)s)", selected),
        { count: selected },
      );
    }
    if (bulkVisible) {
      const inView = boxesInView().length;
      bulkVisible.disabled = inView === 0;
      bulkVisible.textContent = say(
        ngettext("Acknowledge the %(count)s in view", "Acknowledge the %(count)s in view", inView),
        { count: inView },
      );
    }
  }
  let selectionFrame = 0;
  function renderSelectionSoon() {
    if (selectionFrame) return;
    selectionFrame = requestAnimationFrame(() => {
      selectionFrame = 0;
      renderSelection();
    });
  }
  renderSelection();
  window.addEventListener("scroll", renderSelectionSoon, { passive: true });
  window.addEventListener("resize", renderSelectionSoon);
  if (rowsBody && window.MutationObserver) {
    new MutationObserver(renderSelectionSoon).observe(rowsBody, { childList: true, subtree: true });
  }
  document.body.addEventListener("change", (event) => {
    if (event.target.matches?.("input.select-violation")) renderSelection();
  });
  if (bulkForm && bulkVisible) {
    bulkVisible.addEventListener("click", () => {
      const inView = boxesInView();
      if (!inView.length) return;
      // Exactly these: a selection elsewhere is not acted on with them.
      for (const box of selectedBoxes()) box.checked = false;
      for (const box of inView) box.checked = true;
      renderSelection();
      bulkForm.requestSubmit();
    });
  }
  // More than CONFIRM_OVER at once asks first (htmx waits for issueRequest).
  document.body.addEventListener("htmx:confirm", (event) => {
    if (!bulkForm || event.detail.elt !== bulkForm || !confirmDialog) return;
    const count = selectedBoxes().length;
    if (count <= CONFIRM_OVER) return;
    event.preventDefault();
    const question = ngettext(
      "Acknowledge %(count)s violation? It is recorded as acknowledged by you.",
      "Acknowledge these %(count)s violations? Each is recorded as acknowledged by you.",
      count,
    );
    document.getElementById("bulk-confirm-text").textContent = say(question, { count });
    document.getElementById("bulk-confirm-button").textContent = say(
      ngettext("Acknowledge %(count)s", "Acknowledge %(count)s", count),
      { count },
    );
    confirmDialog.returnValue = "";
    confirmDialog.addEventListener(
      "close",
      () => {
        if (confirmDialog.returnValue === "confirm") event.detail.issueRequest(true);
      },
      { once: true },
    );
    confirmDialog.showModal();
  });

  // Rows an answer re-drew (acknowledge, undo): in place at once; their STATE events follow
  // on the stream and re-draw them again without counting twice.
  function drawAnswered(html) {
    const template = document.createElement("template");
    template.innerHTML = `<table><tbody>${html}</tbody></table>`;
    const answered = [...template.content.querySelectorAll("tr")];
    for (const row of answered) {
      const existing = document.getElementById(row.id);
      if (!existing) continue;
      countChange(existing, row);
      existing.replaceWith(row);
      htmx.process(row);
    }
    return answered;
  }
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const elt = event.detail.elt;
    const xhr = event.detail.xhr;
    if (bulkForm && elt === bulkForm) {
      if (!event.detail.successful) {
        if (bulkResult)
          bulkResult.textContent = xhr.responseText || gettext("Could not acknowledge.");
        return;
      }
      const answered = drawAnswered(xhr.responseText);
      if (bulkResult) bulkResult.textContent = "";
      const count = answered.length;
      offerUndo(
        answered,
        say(ngettext("Acknowledged %(count)s.", "Acknowledged %(count)s.", count), { count }),
      );
      renderSelection();
    }
  });

  // A row's own Acknowledge: its answer (or the stream, first) re-draws the row, and the
  // button goes with it, so its answer is heard on the button itself.
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    const button = event.detail.elt;
    if (!button?.matches?.("button.ack-button")) return;
    button.addEventListener(
      "htmx:afterRequest",
      (done) => {
        if (!done.detail.successful) return;
        const row = parseRow(done.detail.xhr.responseText);
        if (row)
          offerUndo(
            [row],
            say(gettext("Acknowledged %(violation)s."), { violation: describe(row) }),
          );
      },
      { once: true },
    );
  });

  // --- undo -----------------------------------------------------------------------------
  function csrfToken() {
    try {
      return JSON.parse(stream.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch {
      return "";
    }
  }
  function offerUndo(rows, text) {
    const refs = rows
      .filter((row) => row.classList.contains("acknowledged"))
      .map(rowTarget)
      .filter(Boolean)
      .map(([kind, id]) => `${kind}:${id}`);
    if (!refs.length) return;
    showNotice(text, {
      action: gettext("Undo"),
      onAction: (notice) => {
        const body = new URLSearchParams();
        for (const ref of refs) body.append("violation", ref);
        fetch("/violations/undo/", {
          method: "POST",
          body,
          headers: { "X-CSRFToken": csrfToken() },
          credentials: "same-origin",
        })
          .then((response) => response.text().then((answer) => [response.ok, answer]))
          .then(([ok, answer]) => {
            notice.remove();
            if (!ok) {
              showNotice(answer || gettext("Could not undo."));
              return;
            }
            const undone = drawAnswered(answer).filter(
              (r) => !r.classList.contains("acknowledged"),
            );
            const count = undone.length;
            const format = ngettext(
              "Undone: %(count)s open again.",
              "Undone: %(count)s open again.",
              count,
            );
            showNotice(say(format, { count }));
          })
          .catch(() => {
            showNotice(gettext("Could not undo: the server did not answer."));
          });
      },
    });
  }

  // --- keys ---------------------------------------------------------------------------
  // ↓/j and ↑/k move between rows, Enter/o opens the detail, a acknowledges, x selects,
  // ? lists the keys. Not while typing, nor while a dialog is open.
  const keysHelp = document.getElementById("keys-help");
  const keysButton = document.getElementById("keys-button");
  if (keysButton && keysHelp) {
    keysButton.addEventListener("click", () => {
      keysHelp.showModal();
    });
  }
  function currentRow() {
    const focused = document.activeElement?.closest?.("#violation-rows tr.violation");
    return focused || null;
  }
  function moveTo(row) {
    if (!row) return;
    row.tabIndex = -1;
    row.focus();
    row.scrollIntoView({ block: "nearest" });
  }
  const NEXT = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1 };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
    if (document.querySelector("dialog[open]")) return;
    if (event.key === "?") {
      event.preventDefault();
      keysHelp?.showModal();
      return;
    }
    const row = currentRow();
    const rows = [...document.querySelectorAll("#violation-rows tr.violation")];
    if (event.key in NEXT) {
      event.preventDefault();
      const at = row ? rows.indexOf(row) : -1;
      moveTo(rows[Math.min(Math.max(at + NEXT[event.key], 0), rows.length - 1)]);
      return;
    }
    if (!row) return;
    if (event.key === "Enter" || event.key === "o") {
      const target = rowTarget(row);
      if (target && !event.target.closest?.("a, button")) {
        event.preventDefault();
        openDetail(target[0], target[1], row);
      }
    } else if (event.key === "a") {
      row.querySelector(".ack-button")?.click();
    } else if (event.key === "x") {
      const box = row.querySelector("input.select-violation");
      if (box) {
        box.checked = !box.checked;
        renderSelection();
      }
    }
  });

  // --- sound --------------------------------------------------------------------------
  const soundButton = document.getElementById("sound-toggle");
  const SOUND_PREF = "violations.sound";
  const LAST_PLAYED = "violations.sound.lastPlayedAt";
  const BURST_MS = 2000;
  const audio = stream.dataset.soundUrl ? new Audio(stream.dataset.soundUrl) : null;
  // A kind's own sound where one is configured (the kind's `sound`), else the default.
  const kindSounds = {};
  const soundsScript = document.getElementById("kind-sounds");
  if (soundsScript) {
    try {
      const urls = JSON.parse(soundsScript.textContent);
      Object.keys(urls).forEach((kind) => {
        const sound = new Audio(urls[kind]);
        // One that cannot be loaded leaves its kind the default sound, never silence.
        sound.addEventListener("error", () => {
          delete kindSounds[kind];
        });
        kindSounds[kind] = sound;
      });
    } catch {
      // no kind sounds: the default for all
    }
  }
  let soundOn = localStorage.getItem(SOUND_PREF) === "on";
  let blocked = false; // the browser refused play() until the user interacts

  function renderSoundButton() {
    if (!soundButton) return;
    const playing = soundOn && !blocked;
    soundButton.textContent = playing ? gettext("Mute sound") : gettext("Enable sound");
    soundButton.setAttribute("aria-pressed", String(playing));
  }

  function play(kind) {
    const sound = (kind && kindSounds[kind]) || audio;
    if (!sound) return;
    sound.currentTime = 0;
    const attempt = sound.play();
    if (attempt?.catch) {
      attempt
        .then(() => {
          blocked = false;
          renderSoundButton();
        })
        .catch((error) => {
          if (error && error.name === "NotAllowedError") {
            blocked = true;
            renderSoundButton();
          }
        });
    }
  }

  // One alert per burst across every open tab. Where the browser has Web Locks (https or
  // localhost), the tab that gets the lock plays and keeps the lock for the burst window;
  // a tab that finds it held stays quiet. The lock lives in the browser process, so every
  // tab sees it at once; a timestamp in localStorage reaches another tab's process a
  // little later, and two tabs could both play.
  function holdForBurst(kind) {
    return (lock) => {
      if (!lock) return undefined;
      play(kind);
      return new Promise((resolve) => {
        setTimeout(resolve, BURST_MS);
      });
    };
  }

  // Without Web Locks (plain http to another host): the timestamp, best effort.
  function claimBurst() {
    const now = Date.now();
    const last = Number(localStorage.getItem(LAST_PLAYED) || 0);
    if (now - last < BURST_MS) return false;
    localStorage.setItem(LAST_PLAYED, String(now));
    return true;
  }

  // The sound of the burst's first row's kind.
  function alertSound(kind) {
    if (!soundOn || !audio) return;
    if (navigator.locks) {
      navigator.locks.request("violations-sound", { ifAvailable: true }, holdForBurst(kind));
    } else if (claimBurst()) {
      play(kind);
    }
  }

  // --- the reminder ---------------------------------------------------------------------
  // REALTIME_REMINDER_MINUTES (off by default): while a violation older than that is
  // neither acknowledged nor shelved, the sound plays again every that many minutes.
  const reminderMs = 60000 * (Number(stream.dataset.reminderMinutes) || 0);
  let remindedAt = Date.now();
  function overdue() {
    const rows = document.querySelectorAll("#violation-rows tr.violation[data-at]");
    for (const row of rows) {
      if (row.classList.contains("acknowledged") || row.classList.contains("shelved")) continue;
      if (ageSeconds(row.dataset.at) * 1000 >= reminderMs) return row;
    }
    return null;
  }
  function remind() {
    if (!soundOn || Date.now() - remindedAt < reminderMs) return;
    const row = overdue();
    if (!row) return;
    remindedAt = Date.now();
    alertSound(row.dataset.kind);
  }
  if (reminderMs > 0) setInterval(remind, Math.min(15000, Math.max(1000, reminderMs / 4)));

  if (soundButton) {
    soundButton.addEventListener("click", () => {
      if (soundOn && !blocked) {
        soundOn = false;
        localStorage.setItem(SOUND_PREF, "off");
      } else {
        soundOn = true;
        blocked = false;
        localStorage.setItem(SOUND_PREF, "on");
        play(); // a sample, and the user gesture browsers want before any sound
      }
      renderSoundButton();
    });
    renderSoundButton();
  }

  // --- desktop notifications ------------------------------------------------------------
  // Opt-in ("Notify me"): while this tab is hidden, one notification per burst of new
  // violations (not for shelved cameras), in one tab; clicking it brings the tab forward
  // and focuses the burst's first row.
  const notifyButton = document.getElementById("notify-toggle");
  const NOTIFY_PREF = "violations.notify";
  const notifications = "Notification" in window;
  let notifyOn = localStorage.getItem(NOTIFY_PREF) === "on";
  let burst = [];
  let burstTimer = null;

  function granted() {
    return notifications && Notification.permission === "granted";
  }
  function renderNotifyButton() {
    if (!notifyButton || !notifications) return;
    notifyButton.hidden = false;
    const denied = Notification.permission === "denied";
    const on = notifyOn && granted();
    notifyButton.textContent = denied
      ? gettext("Notifications blocked")
      : on
        ? gettext("Stop notifications")
        : gettext("Notify me");
    notifyButton.title = denied
      ? gettext("This browser blocks the site's notifications: allow them in its site settings")
      : gettext("A desktop notification when violations arrive while this tab is hidden");
    notifyButton.setAttribute("aria-pressed", String(on));
  }
  if (notifyButton && notifications) {
    notifyButton.addEventListener("click", () => {
      if (notifyOn && granted()) {
        notifyOn = false;
        localStorage.setItem(NOTIFY_PREF, "off");
        renderNotifyButton();
        return;
      }
      Notification.requestPermission().then((permission) => {
        notifyOn = permission === "granted";
        localStorage.setItem(NOTIFY_PREF, notifyOn ? "on" : "off");
        renderNotifyButton();
      });
    });
    renderNotifyButton();
  }

  function describe(row) {
    const cell = (selector) => {
      const found = row.querySelector(selector);
      return found ? found.textContent.trim() : "";
    };
    const time = row.querySelector(".field-time");
    const at = time?.firstChild ? time.firstChild.textContent.trim() : "";
    // Translators: a violation in a notice, as "PPE, camera 12, 14:03:07".
    return say(gettext("%(kind)s, camera %(camera)s, %(time)s"), {
      kind: cell(".kind-badge"),
      camera: cell(".field-camera") || "?",
      time: at,
    });
  }
  function notifyLater(row) {
    if (!notifyOn || !granted() || document.visibilityState !== "hidden") return;
    burst.push({ id: row.id, text: describe(row) });
    if (!burstTimer) burstTimer = setTimeout(showBurst, BURST_MS);
  }
  function showBurst() {
    const rows = burst;
    burst = [];
    burstTimer = null;
    if (!rows.length) return;
    const show = () => {
      const count = rows.length;
      const title =
        count === 1
          ? say(gettext("New violation: %(violation)s"), { violation: rows[0].text })
          : say(ngettext("%(count)s new violation", "%(count)s new violations", count), { count });
      const lines = rows.slice(0, 3).map((r) => r.text);
      if (count > 3) {
        const more = count - 3;
        lines.push(
          say(ngettext("and %(count)s more", "and %(count)s more", more), { count: more }),
        );
      }
      const notice = new Notification(title, {
        body: count === 1 ? gettext("Open the live table to acknowledge it.") : lines.join("\n"),
        tag: "violations", // a newer burst replaces the notification of the last
      });
      notice.onclick = () => {
        window.focus();
        focusRow(rows[0].id);
        notice.close();
      };
    };
    if (navigator.locks) {
      navigator.locks.request("violations-notify", { ifAvailable: true }, (lock) => {
        if (lock) show();
      });
    } else {
      show();
    }
  }
  function focusRow(id) {
    const row = document.getElementById(id);
    if (!row) return;
    row.scrollIntoView({ block: "center" });
    row.classList.add("is-focused");
    setTimeout(() => {
      row.classList.remove("is-focused");
    }, 3000);
    const link = row.querySelector("a.row-link");
    if (link) link.focus();
  }
})();
