// The live table: rows arrive as server-rendered <tr> over SSE (htmx + htmx-ext-sse).
// This script keeps each row on the page once, shows the connection state, resumes from
// the last event seen, and plays one alert per burst, in one tab.
(function () {
  "use strict";

  const stream = document.querySelector("[sse-connect]");
  if (!stream) return;

  const stateLabel = document.getElementById("connection-state");
  const seenEvents = new Set();
  const SEEN_LIMIT = 5000;
  let lastEventId = stream.dataset.lastEventId || "";

  // htmx-ext-sse opens a new EventSource after a fatal error, and a new one sends no
  // Last-Event-ID: carry it in the URL so the page still gets what it missed.
  htmx.createEventSource = function (url) {
    const resumed = new URL(url, window.location.href);
    if (lastEventId) resumed.searchParams.set("lastEventId", lastEventId);
    return new EventSource(resumed, { withCredentials: true });
  };

  // --- connection state ---------------------------------------------------------------
  const STATES = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    offline: "Offline",
  };
  function setState(state) {
    if (!stateLabel) return;
    stateLabel.className = "connection-state state-" + state;
    stateLabel.textContent = STATES[state];
    document.body.dataset.connection = state;
  }
  document.body.addEventListener("htmx:sseOpen", function () {
    setState("live");
  });
  document.body.addEventListener("htmx:sseError", function () {
    setState(navigator.onLine ? "reconnecting" : "offline");
  });
  window.addEventListener("offline", function () {
    setState("offline");
  });
  window.addEventListener("online", function () {
    if (document.body.dataset.connection !== "live") setState("reconnecting");
  });

  // --- rows ---------------------------------------------------------------------------
  function parseRow(html) {
    const template = document.createElement("template");
    template.innerHTML = "<table><tbody>" + html + "</tbody></table>";
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
  function unacknowledged(row) {
    return row && !row.classList.contains("acknowledged") ? 1 : 0;
  }
  function inWindow(row) {
    const counters = document.getElementById("counters");
    const since = counters ? counters.dataset.since || "" : "";
    return !since || (row.dataset.at || "") >= since;
  }
  function countChange(before, after) {
    const row = after || before;
    const delta = unacknowledged(after) - unacknowledged(before);
    const counter = document.querySelector('.count[data-kind="' + row.dataset.kind + '"]');
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
      '#result_list [data-violation="' + mark.dataset.violation + '"]'
    );
    return drawn ? drawn.closest("tr") : null;
  }

  document.body.addEventListener("htmx:sseBeforeMessage", function (event) {
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
    countChange(null, row);
    growTrend(row);
    alertSound();
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
    bar.querySelectorAll(".trend-segment").forEach(function (segment) {
      const count = Number(segment.dataset.count);
      const height = count * pxPer;
      top -= height;
      total += count;
      segment.querySelectorAll("rect").forEach(function (rect) {
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
    const bar = trend.querySelector('.trend-bar[data-bucket="' + key + '"]');
    if (!bar) {
      if (key > (trend.dataset.lastBucket || "")) refreshTrend(trend); // a new hour
      return;
    }
    const segment = bar.querySelector('.trend-segment[data-kind="' + row.dataset.kind + '"]');
    if (!segment) return;
    const count = Number(segment.dataset.count) + 1;
    segment.dataset.count = String(count);
    const title = segment.querySelector("title");
    if (title) title.textContent = segment.dataset.label + ": " + count;
    const total = restack(bar, Number(trend.dataset.px), Number(trend.dataset.base));
    const cell = trend.querySelector(
      'tr[data-bucket="' + key + '"] td[data-kind="' + row.dataset.kind + '"]'
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
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    if (!target.matches || !target.matches("tr.violation") || !event.detail.serverResponse) return;
    if (!target.isConnected) {
      // The acknowledgement came over the stream first and re-drew the row already.
      event.detail.shouldSwap = false;
      return;
    }
    const row = parseRow(event.detail.serverResponse);
    if (row) countChange(target, row);
  });

  // "Load older" may return rows that moved down since: keep the first of each.
  document.body.addEventListener("htmx:afterSwap", function () {
    const ids = new Set();
    document.querySelectorAll("tr[id^='violation-']").forEach(function (tr) {
      if (ids.has(tr.id)) tr.remove();
      else ids.add(tr.id);
    });
  });

  // --- sound --------------------------------------------------------------------------
  const soundButton = document.getElementById("sound-toggle");
  const SOUND_PREF = "violations.sound";
  const LAST_PLAYED = "violations.sound.lastPlayedAt";
  const BURST_MS = 2000;
  const audio = stream.dataset.soundUrl ? new Audio(stream.dataset.soundUrl) : null;
  let soundOn = localStorage.getItem(SOUND_PREF) === "on";
  let blocked = false; // the browser refused play() until the user interacts

  function renderSoundButton() {
    if (!soundButton) return;
    const playing = soundOn && !blocked;
    soundButton.textContent = playing ? "Mute sound" : "Enable sound";
    soundButton.setAttribute("aria-pressed", String(playing));
  }

  function play() {
    if (!audio) return;
    audio.currentTime = 0;
    const attempt = audio.play();
    if (attempt && attempt.catch) {
      attempt
        .then(function () {
          blocked = false;
          renderSoundButton();
        })
        .catch(function (error) {
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
  function holdForBurst(lock) {
    if (!lock) return undefined;
    play();
    return new Promise(function (resolve) {
      setTimeout(resolve, BURST_MS);
    });
  }

  // Without Web Locks (plain http to another host): the timestamp, best effort.
  function claimBurst() {
    const now = Date.now();
    const last = Number(localStorage.getItem(LAST_PLAYED) || 0);
    if (now - last < BURST_MS) return false;
    localStorage.setItem(LAST_PLAYED, String(now));
    return true;
  }

  function alertSound() {
    if (!soundOn || !audio) return;
    if (navigator.locks) {
      navigator.locks.request("violations-sound", { ifAvailable: true }, holdForBurst);
    } else if (claimBurst()) {
      play();
    }
  }

  if (soundButton) {
    soundButton.addEventListener("click", function () {
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
})();
