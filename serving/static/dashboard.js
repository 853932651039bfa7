// Switchboard operations dashboard.
//
// Reads GET /v1/metrics/process (the process metrics over a range, their time
// series and the service-state history) and GET /v1/drift (the state now),
// and draws them with the vendored Chart.js. Every value shown comes from
// those two answers; nothing is computed here but unit conversions.
//
// The chart instances, the last answers and a load counter are exposed on
// window.switchboardDashboard, for the browser test and for debugging.
//
// Known limitation: the page does not refresh by itself; an operator leaving
// it open sees the numbers of the last load until they press Refresh or
// change the range. Times are shown and entered in UTC only.
"use strict";

(function () {
  const KEY_STORAGE = "switchboard.apiKey";
  const METRICS_URL = "v1/metrics/process";
  const DRIFT_URL = "v1/drift";
  const DEFAULT_RANGE = "24h";
  const AGE_BAND_LABELS = {
    under_1h: "< 1 h",
    "1h_to_4h": "1–4 h",
    "4h_to_24h": "4–24 h",
    "1d_to_3d": "1–3 d",
    "3d_to_7d": "3–7 d",
    over_7d: "> 7 d",
  };
  const PALETTE = [
    "#3b82c4", "#e07b39", "#4caf7d", "#c94f7c", "#8e6cc2",
    "#d4a72c", "#3fa7a3", "#7a8a99", "#b5533c", "#5c6bc0",
  ];
  const STATE_COLOURS = { model: "#2f855a", rules: "#c05621" };
  const STATE_LEVELS = { model: 0, rules: 1 };
  const BUCKET_WORDS = { hour: "hourly", day: "daily" };

  const board = {
    charts: {},
    report: null,
    drift: null,
    driftAvailable: null,
    loads: 0,
    status: "loading",
    query: null,
  };
  window.switchboardDashboard = board;

  const view = { since: DEFAULT_RANGE, until: null, by: "queue" };
  let loadSequence = 0;

  document.addEventListener("DOMContentLoaded", start);

  function start() {
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    createCharts();
    wireControls();
    document.getElementById("api-key").value = storedKey();
    load();
  }

  // ---- controls ------------------------------------------------------------

  function wireControls() {
    for (const button of document.querySelectorAll("button.range")) {
      button.addEventListener("click", function () {
        view.since = button.dataset.range;
        view.until = null;
        markRange(button.dataset.range);
        load();
      });
    }
    document.getElementById("custom-range").addEventListener("submit", function (event) {
      event.preventDefault();
      const from = document.getElementById("range-from").value;
      const to = document.getElementById("range-to").value;
      if (!from) {
        return;
      }
      // datetime-local has no zone; the inputs are labelled UTC, and so is
      // the API's reading of a time without an offset. Say so explicitly.
      view.since = from + "Z";
      view.until = to ? to + "Z" : null;
      markRange(null);
      load();
    });
    document.getElementById("group-by").addEventListener("change", function (event) {
      view.by = event.target.value;
      load();
    });
    document.getElementById("refresh").addEventListener("click", load);
    document.getElementById("key-form").addEventListener("submit", function (event) {
      event.preventDefault();
      const key = document.getElementById("api-key").value.trim();
      // sessionStorage: the key lives as long as this tab, never on disk
      // for other tabs or later visits.
      if (key) {
        sessionStorage.setItem(KEY_STORAGE, key);
      } else {
        sessionStorage.removeItem(KEY_STORAGE);
      }
      load();
    });
    document.getElementById("forget-key").addEventListener("click", function () {
      sessionStorage.removeItem(KEY_STORAGE);
      document.getElementById("api-key").value = "";
    });
  }

  function markRange(range) {
    for (const button of document.querySelectorAll("button.range")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === range));
    }
  }

  function storedKey() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  // ---- loading -------------------------------------------------------------

  async function load() {
    const sequence = ++loadSequence;
    const params = new URLSearchParams({ since: view.since, by: view.by });
    if (view.until) {
      params.set("until", view.until);
    }
    board.query = params.toString();
    setStatus("loading");

    const [metrics, drift] = await Promise.all([
      getJson(METRICS_URL + "?" + params.toString()),
      getJson(DRIFT_URL),
    ]);
    if (sequence !== loadSequence) {
      return; // a newer load started meanwhile; its answer wins
    }
    if (!metrics.ok) {
      showProblem(metrics);
      setStatus(metrics.status === 401 || metrics.status === 403 ? "needs-key" : "error");
      return;
    }
    showMessage(null);
    board.report = metrics.body;
    board.drift = drift.ok ? drift.body : null;
    board.driftAvailable = drift.ok;
    render(metrics.body, drift);
    board.loads += 1;
    setStatus("ready");
  }

  async function getJson(url) {
    const headers = { Accept: "application/json" };
    const key = storedKey();
    if (key) {
      headers["X-API-Key"] = key;
    }
    try {
      const response = await fetch(url, { headers: headers, cache: "no-store" });
      let body = null;
      try {
        body = await response.json();
      } catch (err) {
        body = null;
      }
      return { ok: response.ok, status: response.status, body: body };
    } catch (err) {
      return { ok: false, status: 0, body: { message: String(err) } };
    }
  }

  function setStatus(status) {
    board.status = status;
    document.body.dataset.status = status;
  }

  function showProblem(answer) {
    const body = answer.body || {};
    let text;
    if (answer.status === 401) {
      text = "This service needs an API key with the route scope: enter it above. ";
    } else if (answer.status === 403) {
      text = "This API key lacks the route scope the dashboard reads with. ";
    } else if (answer.status === 0) {
      text = "The service did not answer. ";
    } else {
      text = "The metrics request failed (HTTP " + answer.status + "). ";
    }
    text += body.message || body.detail || "";
    for (const problem of body.problems || []) {
      text += " " + problem.field + ": " + problem.message;
      if (problem.limit) {
        text += " (allowed: " + problem.limit + ")";
      }
    }
    showMessage(text);
    if (answer.status === 401 || answer.status === 403) {
      document.getElementById("api-key").focus();
    }
  }

  function showMessage(text) {
    const message = document.getElementById("message");
    message.hidden = !text;
    message.textContent = text || "";
  }

  // ---- rendering -----------------------------------------------------------

  function render(report, drift) {
    const since = new Date(report.since);
    const until = new Date(report.until);
    document.getElementById("range-note").textContent =
      "From " + utcText(since) + " to " + utcText(until) + " UTC, " +
      BUCKET_WORDS[report.series.fallback_reasons.bucket] +
      " buckets; open tickets as of " +
      utcText(new Date(report.as_of)) + " UTC.";
    document.getElementById("range-from").value = inputText(since);
    document.getElementById("range-to").value = inputText(until);

    renderSummary(report.overall);
    renderServiceState(report, drift);
    renderQueueAging(report.queue_aging);
    renderEscalation(report.series.escalation_latency);
    renderReassignments(report.series.reassignments);
    renderFallbacks(report.series.fallback_reasons);
    renderExceptions(report.exceptions_by_source);
    renderGroups(report.by, report.groups);
  }

  function renderSummary(overall) {
    const sla = overall.sla_first_response;
    const escalation = overall.time_to_escalate;
    const tiles = [
      ["Tickets", String(overall.tickets), overall.decisions + " decisions"],
      ["First-touch accuracy", percent(overall.first_touch_accuracy),
        overall.reviewed + " reviewed"],
      ["Reassignment rate", percent(overall.reassignment_rate),
        overall.reassigned + " reassigned"],
      ["Override rate", percent(overall.override_rate), overall.overridden + " overridden"],
      ["Fallback rate", percent(overall.fallback_rate), overall.fallbacks + " fallbacks"],
      ["Open tickets", String(overall.open_tickets), "not resolved"],
      ["Time to escalate (p50)", duration(escalation.p50_s),
        overall.escalated + " escalated, p90 " + duration(escalation.p90_s)],
      ["First-response SLA", percent(sla.attainment),
        sla.met + " met, " + sla.breached + " breached"],
    ];
    const summary = document.getElementById("summary");
    summary.replaceChildren();
    for (const [label, value, detail] of tiles) {
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.dataset.tile = label;
      tile.append(element("div", "label", label), element("div", "value", value),
        element("div", "label", detail));
      summary.append(tile);
    }
  }

  function renderServiceState(report, drift) {
    const history = report.service_state;
    const since = Date.parse(report.since);
    const until = Date.parse(report.until);
    const points = statePoints(history, since, until);
    const chart = board.charts.serviceState;
    chart.options.scales.x.min = since;
    chart.options.scales.x.max = until;
    chart.data.datasets = [{
      label: "service state",
      data: points,
      stepped: "before", // a state holds until the next change
      borderColor: "#4a5568",
      borderWidth: 2,
      pointRadius: points.map(function (point) { return point.change ? 5 : 0; }),
      pointBackgroundColor: points.map(function (point) {
        return point.y === STATE_LEVELS.rules ? STATE_COLOURS.rules : STATE_COLOURS.model;
      }),
    }];
    chart.update();
    toggleEmpty("panel-service-state", points.length === 0);
    renderStateTable(history);
    renderBadge(drift, history);
  }

  // Points of the state line: the state in force at `since`, one per change
  // in the range, and the last state held to `until`.
  function statePoints(history, since, until) {
    const points = [];
    let level = history.initial ? stateLevel(history.initial.state) : null;
    if (level === null && history.changes.length) {
      level = stateLevel(history.changes[0].payload.previous);
    }
    if (level !== null) {
      points.push({ x: since, y: level, change: null });
    }
    for (const change of history.changes) {
      const changed = stateLevel(change.state);
      if (changed === null) {
        continue;
      }
      points.push({ x: Date.parse(change.at), y: changed, change: change });
      level = changed;
    }
    if (level !== null) {
      points.push({ x: until, y: level, change: null });
    }
    return points;
  }

  function renderStateTable(history) {
    const body = document.querySelector("#state-changes tbody");
    body.replaceChildren();
    const rows = [];
    if (history.initial) {
      rows.push([utcText(new Date(history.initial.at)) + " (before range)",
        stateName(history.initial.payload.previous), stateName(history.initial.state),
        history.initial.payload.cause || "", changeDetail(history.initial)]);
    }
    for (const change of history.changes) {
      rows.push([utcText(new Date(change.at)), stateName(change.payload.previous),
        stateName(change.state), change.payload.cause || "", changeDetail(change)]);
    }
    if (!rows.length) {
      rows.push(["—", "", "", "", "no state change recorded"]);
    }
    for (const cells of rows) {
      const row = document.createElement("tr");
      for (const cell of cells) {
        row.append(element("td", null, cell));
      }
      body.append(row);
    }
  }

  function changeDetail(change) {
    const payload = change.payload || {};
    const evidence = payload.evidence || {};
    if (payload.cause === "force") {
      return "forced by " + (evidence.actor || "?") + ": " + (evidence.reason || "");
    }
    const reasons = (evidence.check && evidence.check.reasons) || [];
    if (reasons.length) {
      return reasons.join("; ");
    }
    if (evidence.clean_checks_needed !== undefined && payload.state === "model") {
      return evidence.clean_checks_needed + " clean checks in a row";
    }
    return "";
  }

  function renderBadge(drift, history) {
    const badge = document.getElementById("state-badge");
    const note = document.getElementById("drift-note");
    if (drift.ok && drift.body && drift.body.state) {
      const state = stateName(drift.body.state);
      badge.dataset.state = state;
      let text = "Service state: " + stateLabel(state);
      if (drift.body.since) {
        text += " since " + utcText(new Date(drift.body.since)) + " UTC";
      }
      badge.textContent = text;
      const forced = drift.body.forced;
      note.textContent = forced
        ? "Pinned by " + forced.actor + ": " + forced.reason
        : "Set by the drift checks (" + drift.body.clean_checks + " of " +
          drift.body.clean_checks_needed + " clean checks).";
      return;
    }
    // No drift endpoint (older service) or it failed: fall back to the last
    // recorded state change, and say where the badge comes from.
    const last = history.changes.length
      ? history.changes[history.changes.length - 1]
      : history.initial;
    const state = last ? stateName(last.state) : "unknown";
    badge.dataset.state = state;
    badge.textContent = "Service state: " + stateLabel(state) +
      (last ? " (last recorded " + utcText(new Date(last.at)) + " UTC)" : "");
    note.textContent = drift.status === 404
      ? "This service has no drift endpoint (GET /v1/drift); the state shown is " +
        "the last one recorded in the decision store."
      : "Drift status unavailable (HTTP " + drift.status + "); the state shown " +
        "is the last one recorded in the decision store.";
  }

  function renderQueueAging(rows) {
    const bands = rows.length ? Object.keys(rows[0].open_by_age) : [];
    setData(board.charts.queueAging, rows.map(function (row) { return row.queue; }),
      bands.map(function (band, index) {
        return bar(AGE_BAND_LABELS[band] || band, rows.map(function (row) {
          return row.open_by_age[band];
        }), PALETTE[index]);
      }));
    toggleEmpty("panel-queue-aging", rows.length === 0);
  }

  function renderEscalation(series) {
    const values = series.values;
    const minutes = function (list) {
      return list.map(function (value) { return value === null ? null : value / 60; });
    };
    setData(board.charts.escalationLatency, bucketLabels(series), [
      line("mean (min)", minutes(values.mean_s), PALETTE[0], "minutes"),
      line("p90 (min)", minutes(values.p90_s), PALETTE[1], "minutes"),
      Object.assign(bar("escalated tickets", values.escalated, "#cbd5e0"),
        { yAxisID: "count", order: 2 }),
    ]);
    toggleEmpty("panel-escalation-latency", sum(values.escalated) === 0);
  }

  function renderReassignments(series) {
    const values = series.values;
    setData(board.charts.reassignments, bucketLabels(series), [
      Object.assign(bar("reviewed", values.reviewed, "#cbd5e0"), { order: 2 }),
      line("reassigned", values.reassigned, PALETTE[1]),
      line("overridden", values.overridden, PALETTE[3]),
    ]);
    toggleEmpty("panel-reassignments", sum(values.reviewed) === 0);
  }

  function renderFallbacks(series) {
    const reasons = Object.keys(series.values);
    setData(board.charts.fallbackReasons, bucketLabels(series),
      reasons.map(function (reason, index) {
        return bar(reason, series.values[reason], PALETTE[index % PALETTE.length]);
      }));
    toggleEmpty("panel-fallback-reasons", reasons.length === 0);
  }

  function renderExceptions(rows) {
    const sources = rows.map(function (row) { return row.source_system; });
    const kinds = [["fallbacks", PALETTE[0]], ["overrides", PALETTE[3]],
      ["reassignments", PALETTE[1]]];
    setData(board.charts.exceptions, sources, kinds.map(function (kind) {
      return bar(kind[0], rows.map(function (row) { return row[kind[0]]; }), kind[1]);
    }));
    toggleEmpty("panel-exceptions", rows.length === 0);
  }

  function renderGroups(by, groups) {
    document.getElementById("groups-title").textContent =
      "Rates by " + by.replace("_", " ");
    const rates = [["first-touch accuracy", "first_touch_accuracy", PALETTE[2]],
      ["reassignment rate", "reassignment_rate", PALETTE[1]],
      ["override rate", "override_rate", PALETTE[3]],
      ["fallback rate", "fallback_rate", PALETTE[0]]];
    setData(board.charts.groups, groups.map(function (group) { return group.group; }),
      rates.map(function (rate) {
        return bar(rate[0], groups.map(function (group) {
          const value = group[rate[1]];
          return value === null ? null : value * 100;
        }), rate[2]);
      }));
    toggleEmpty("panel-groups", groups.length === 0);
  }

  // ---- charts --------------------------------------------------------------

  function createCharts() {
    const stacked = { x: { stacked: true }, y: { stacked: true, beginAtZero: true } };
    const horizontalStacked = {
      x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
      y: { stacked: true },
    };
    board.charts.serviceState = new Chart(canvas("chart-service-state"), {
      type: "line",
      data: { datasets: [] },
      options: {
        parsing: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: stateTooltip, title: timeTooltip } },
        },
        scales: {
          x: { type: "linear", ticks: { callback: timeTick, maxTicksLimit: 8 } },
          y: {
            min: -0.25,
            max: 1.25,
            ticks: { stepSize: 1, callback: function (value) {
              return value === 0 ? "model" : value === 1 ? "rules" : "";
            } },
          },
        },
      },
    });
    board.charts.queueAging = new Chart(canvas("chart-queue-aging"), {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: { indexAxis: "y", scales: horizontalStacked },
    });
    board.charts.escalationLatency = new Chart(canvas("chart-escalation-latency"), {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: {
        scales: {
          minutes: { position: "left", beginAtZero: true,
            title: { display: true, text: "minutes to escalate" } },
          count: { position: "right", beginAtZero: true, ticks: { precision: 0 },
            grid: { drawOnChartArea: false }, title: { display: true, text: "tickets" } },
        },
      },
    });
    board.charts.reassignments = new Chart(canvas("chart-reassignments"), {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    board.charts.fallbackReasons = new Chart(canvas("chart-fallback-reasons"), {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: { scales: stacked },
    });
    board.charts.exceptions = new Chart(canvas("chart-exceptions"), {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: { indexAxis: "y", scales: horizontalStacked },
    });
    board.charts.groups = new Chart(canvas("chart-groups"), {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: {
        scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } },
      },
    });
  }

  function canvas(id) {
    return document.getElementById(id);
  }

  function setData(chart, labels, datasets) {
    chart.data.labels = labels;
    chart.data.datasets = datasets;
    chart.update();
  }

  function bar(label, data, colour) {
    return { type: "bar", label: label, data: data, backgroundColor: colour };
  }

  function line(label, data, colour, axis) {
    const dataset = {
      type: "line",
      label: label,
      data: data,
      borderColor: colour,
      backgroundColor: colour,
      pointRadius: 2,
      order: 1,
    };
    if (axis) {
      dataset.yAxisID = axis;
    }
    return dataset;
  }

  function stateTooltip(item) {
    const point = item.raw;
    const name = stateLabel(point.y === STATE_LEVELS.rules ? "rules" : "model");
    if (!point.change) {
      return name;
    }
    const cause = point.change.payload.cause;
    return name + (cause ? " (" + cause + ")" : "");
  }

  function timeTooltip(items) {
    return items.length ? utcText(new Date(items[0].raw.x)) + " UTC" : "";
  }

  function timeTick(value) {
    return utcText(new Date(value));
  }

  function toggleEmpty(panelId, isEmpty) {
    const note = document.querySelector("#" + panelId + " .empty");
    if (note) {
      note.hidden = !isEmpty;
    }
  }

  // ---- small helpers -------------------------------------------------------

  // "drift" (the monitor's name) and "rules" both mean tickets go by rules.
  function stateName(state) {
    if (state === null || state === undefined) {
      return "";
    }
    return state === "model" ? "model" : "rules";
  }

  function stateLevel(state) {
    const name = stateName(state);
    return name ? STATE_LEVELS[name] : null;
  }

  function stateLabel(state) {
    if (state === "model") {
      return "model";
    }
    return state === "rules" ? "rules (drift)" : "unknown";
  }

  function bucketLabels(series) {
    return series.starts.map(function (start) {
      const text = new Date(start).toISOString();
      return series.bucket === "hour"
        ? text.slice(5, 10) + " " + text.slice(11, 16)
        : text.slice(0, 10);
    });
  }

  function utcText(date) {
    return date.toISOString().slice(0, 16).replace("T", " ");
  }

  function inputText(date) {
    return date.toISOString().slice(0, 16);
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) {
      return "–";
    }
    if (seconds < 90) {
      return Math.round(seconds) + " s";
    }
    if (seconds < 5400) {
      return Math.round(seconds / 60) + " min";
    }
    if (seconds < 172800) {
      return (seconds / 3600).toFixed(1) + " h";
    }
    return (seconds / 86400).toFixed(1) + " d";
  }

  function sum(values) {
    return values.reduce(function (total, value) { return total + (value || 0); }, 0);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    node.textContent = text;
    return node;
  }
})();
