// The lanlm dashboard: polls /api/status and /api/history?after=STEP every 2 s and draws
// uPlot charts (when uPlot was compiled in) and tables. window.lanlmDashboard exposes what
// is drawn (points, worker rows) for the browser test.
"use strict";
(function () {
  const POLL_MS = 2000;
  const state = { after: -1, points: [], charts: {}, status: null, errors: 0 };
  window.lanlmDashboard = { lossPoints: 0, workerRows: 0, polls: 0 };
  const $ = (id) => document.getElementById(id);
  const haveCharts = typeof uPlot !== "undefined";

  function fmt(x, digits) {
    if (x === undefined || x === null || !isFinite(x)) return "–";
    const abs = Math.abs(x);
    if (abs >= 1e9) return (x / 1e9).toFixed(2) + " G";
    if (abs >= 1e6) return (x / 1e6).toFixed(2) + " M";
    if (abs >= 1e4) return (x / 1e3).toFixed(1) + " k";
    return x.toFixed(digits === undefined ? 0 : digits);
  }
  function ago(ms, now) {
    if (!ms) return "–";
    const s = Math.max(0, (now - ms) / 1000);
    if (s < 90) return s.toFixed(0) + " s ago";
    if (s < 5400) return (s / 60).toFixed(0) + " min ago";
    return (s / 3600).toFixed(1) + " h ago";
  }
  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
  }

  // The 99th percentile of xs: a y range that a few outliers (the first step, which waits
  // for workers; a checkpoint) do not flatten.
  function p99(xs) {
    if (!xs.length) return null;
    const sorted = xs.slice().sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
  }

  function makeChart(id, xLabel, series, yMax) {
    const el = $(id);
    const y = yMax ? { range: (u, min, max) => [0, yMax() || max] } : {};
    const opts = {
      width: Math.max(400, el.parentElement.clientWidth - 20), height: 240,
      scales: { x: { time: false }, y: y },
      axes: [{ label: xLabel }, { size: 70 }],
      series: [{ label: xLabel }].concat(series.map((s) => Object.assign({ width: 1.5 }, s))),
    };
    const data = [[]].concat(series.map(() => []));
    return new uPlot(opts, data, el);
  }

  function initCharts() {
    if (!haveCharts) {
      const notice = $("notice");
      notice.hidden = false;
      notice.textContent = "Charts are off: this coordinator was built without uPlot " +
        "(run deploy/setup-deps.sh, then rebuild). The tables below still update.";
      return;
    }
    const loss = [{ label: "loss", stroke: "#1f77b4" },
                  { label: "validation loss", stroke: "#d62728", spanGaps: true }];
    state.charts.lossStep = makeChart("chart-loss-step", "step", loss);
    state.charts.lossTokens = makeChart("chart-loss-tokens", "tokens", loss);
    state.charts.tps = makeChart("chart-tps", "step", [{ label: "tokens/s", stroke: "#2ca02c" }],
                                 () => state.tpsMax);
    state.charts.split = makeChart("chart-split", "step", [
      { label: "compute", stroke: "#1f77b4" }, { label: "transfer", stroke: "#ff7f0e" },
      { label: "waiting", stroke: "#7f7f7f" }, { label: "tree sum", stroke: "#9467bd" },
      { label: "optimizer", stroke: "#8c564b" }], () => state.splitMax);
  }

  function redraw() {
    const p = state.points;
    const step = p.map((r) => r.step);
    const loss = p.map((r) => r.loss);
    const val = p.map((r) => (r.validation_loss > 0 ? r.validation_loss : null));
    window.lanlmDashboard.lossPoints = p.length;
    $("chart-loss-step").dataset.points = String(p.length);
    if (!haveCharts) return;
    const tps = p.map((r) => r.tokens_per_second);
    state.tpsMax = 1.1 * p99(tps);
    state.splitMax = 1.1 * p99(p.map((r) => r.step_s));
    state.charts.lossStep.setData([step, loss, val]);
    state.charts.lossTokens.setData([p.map((r) => r.tokens), loss, val]);
    state.charts.tps.setData([step, tps]);
    state.charts.split.setData([step, p.map((r) => r.compute_s), p.map((r) => r.transfer_s),
      p.map((r) => r.waiting_s), p.map((r) => r.tree_s), p.map((r) => r.optimizer_s)]);
  }

  function renderStatus(s) {
    const mode = $("mode");
    mode.textContent = s.mode;
    mode.className = "badge " + s.mode;
    $("model").textContent = s.model_config + "  ·  " + s.fingerprint;
    $("step").textContent = s.total_steps ? s.step + " / " + s.total_steps : String(s.step);
    $("loss").textContent = fmt(s.loss, 4) + (s.validation_loss > 0 ? " (val " + fmt(s.validation_loss, 4) + ")" : "");
    $("tps").textContent = fmt(s.tokens_per_second);
    const last = state.points.length ? state.points[state.points.length - 1] : null;
    $("tokens").textContent = last ? fmt(last.tokens) : "–";
    $("workers").textContent = String(s.workers_connected);
    $("sessions").textContent = s.sessions + " (" + fmt(s.kv_cache_bytes / 1048576, 1) + " MiB KV)";
    const ck = s.checkpoints.length ? s.checkpoints[s.checkpoints.length - 1] : null;
    $("ckpt").textContent = ck ? "step " + ck.step + ", " + ago(ck.unix_ms, s.now_unix_ms) : "none yet";
    $("updated").textContent = "updated " + new Date(s.now_unix_ms).toLocaleTimeString();

    const workers = $("workers-table").tBodies[0];
    workers.replaceChildren();
    const sorted = s.workers.slice().sort((a, b) => (b.connected - a.connected) || a.name.localeCompare(b.name));
    for (const w of sorted) {
      const row = workers.insertRow();
      cell(row, w.name); cell(row, w.id); cell(row, w.connected ? "connected" : "left");
      cell(row, fmt(w.tokens_per_second), "num"); cell(row, String(w.leases), "num");
      // The relay: which peer fed its newest version, and how often a peer failed it.
      const from = w.params_from === "" ? "–" : w.params_from;
      cell(row, w.relay_fallbacks > 0 ? from + " (" + w.relay_fallbacks + " fallbacks)" : from);
      cell(row, ago(w.last_seen_unix_ms, s.now_unix_ms));
    }
    window.lanlmDashboard.workerRows = sorted.filter((w) => w.connected || w.leases > 0).length;

    const checkpoints = $("checkpoints-table").tBodies[0];
    checkpoints.replaceChildren();
    for (const c of s.checkpoints.slice().reverse()) {
      const row = checkpoints.insertRow();
      cell(row, String(c.step), "num"); cell(row, c.path.split("/").pop()); cell(row, ago(c.unix_ms, s.now_unix_ms));
    }
    const sessions = $("sessions-table").tBodies[0];
    sessions.replaceChildren();
    const row1 = sessions.insertRow(); cell(row1, "live sessions"); cell(row1, String(s.sessions), "num");
    const row2 = sessions.insertRow(); cell(row2, "KV cache"); cell(row2, fmt(s.kv_cache_bytes / 1048576, 1) + " MiB", "num");
    const g = s.generate;  // counts since the coordinator started; latencies are means
    if (g) {
      const ms = (x) => (x === null ? "–" : fmt(1000 * x, 1) + " ms");
      const rows = [["sessions opened", String(g.sessions_opened)], ["generations", String(g.generations)],
                    ["tokens generated", fmt(g.tokens)], ["time to first token", ms(g.time_to_first_token_mean_s)],
                    ["per-token latency", ms(g.token_latency_mean_s)], ["errors", String(g.errors)]];
      for (const [label, value] of rows) {
        const row = sessions.insertRow(); cell(row, label); cell(row, value, "num");
      }
    }
  }

  async function poll() {
    try {
      const [status, history] = await Promise.all([
        fetch("api/status").then((r) => r.json()),
        fetch("api/history?after=" + state.after).then((r) => r.json()),
      ]);
      // A resumed run may have redone steps: drop what the server no longer has.
      const fresh = history.points;
      if (fresh.length) {
        const first = fresh[0].step;
        while (state.points.length && state.points[state.points.length - 1].step >= first) state.points.pop();
        state.points = state.points.concat(fresh);
        state.after = fresh[fresh.length - 1].step;
        redraw();
      }
      renderStatus(status);
      state.errors = 0;
      window.lanlmDashboard.polls++;
    } catch (e) {
      state.errors++;
      const mode = $("mode");
      mode.textContent = "unreachable";
      mode.className = "badge down";
    }
    setTimeout(poll, POLL_MS);
  }

  initCharts();
  window.addEventListener("resize", () => {
    for (const chart of Object.values(state.charts)) {
      chart.setSize({ width: Math.max(400, chart.root.parentElement.clientWidth - 20), height: 240 });
    }
  });
  poll();
})();
