/* /dashboard: every department with its status, health and deployment URL. */
"use strict";

(() => {
  const HEALTH_CONCURRENCY = 2;
  const HEALTHY_STATUSES = new Set(["ACTIVE", "DEGRADED"]);
  let generation = 0;

  const filter = () => document.getElementById("status-filter");

  function link(href, text) {
    return PO.el("a", { href, text });
  }

  function row(department) {
    const health = PO.el("td", { class: "health", text: "—" });
    const url = department.deploymentUrl;
    const tr = PO.el(
      "tr",
      { dataset: { departmentId: department.departmentId } },
      PO.el("td", {}, link(`/dashboard/${encodeURIComponent(department.departmentId)}`,
        department.departmentId)),
      PO.el("td", { text: department.departmentName }),
      PO.el("td", {}, PO.badge(department.status)),
      health,
      PO.el("td", { text: PO.when(department.createdAt) }),
      PO.el("td", {}, url ? link(url, url) : "—"),
    );
    return { tr, health };
  }

  async function checkHealth(departmentId, cell, mine) {
    cell.textContent = "checking…";
    try {
      const result = await PO.api("GET", `/api/departments/${encodeURIComponent(departmentId)}/health`);
      if (mine !== generation) return;
      cell.replaceChildren(PO.badge(result.healthy ? "healthy" : "unhealthy"));
      cell.title = result.checks.map((c) => `${c.name}: ${c.healthy ? "ok" : c.detail}`).join("\n");
    } catch (error) {
      if (mine === generation) cell.textContent = `error: ${error.message}`;
    }
  }

  /* Health checks run live against real components: a few at a time, not all at once. */
  async function checkAll(pending, mine) {
    const workers = Array.from({ length: HEALTH_CONCURRENCY }, async () => {
      while (pending.length && mine === generation) {
        const [departmentId, cell] = pending.shift();
        await checkHealth(departmentId, cell, mine);
      }
    });
    await Promise.all(workers);
  }

  async function load() {
    const mine = ++generation;
    const status = filter().value;
    const query = new URLSearchParams({ perPage: "500" });
    if (status) query.set("status", status);
    const summary = document.getElementById("fleet-summary");
    summary.textContent = "Loading…";
    let body;
    try {
      body = await PO.api("GET", `/api/departments?${query}`);
    } catch (error) {
      summary.textContent = `Could not load departments: ${error.message}`;
      return;
    }
    if (mine !== generation) return;
    const rows = document.getElementById("fleet-rows");
    const pending = [];
    rows.replaceChildren(...body.departments.map((department) => {
      const { tr, health } = row(department);
      if (HEALTHY_STATUSES.has(department.status)) pending.push([department.departmentId, health]);
      return tr;
    }));
    summary.textContent = `${body.total} department${body.total === 1 ? "" : "s"}` +
      (status ? ` with status ${status.toLowerCase()}` : "");
    await checkAll(pending, mine);
  }

  /* The original service's targets, at a glance (admins: /api/metrics is theirs). */
  const SVG = "http://www.w3.org/2000/svg";
  const percent = (ratio) => (ratio === null ? "—" : `${(ratio * 100).toFixed(1)}%`);
  const duration = (s) => (s === null ? "—" : s < 90 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`);

  function setKpi(id, text, met) {
    const box = document.getElementById(id);
    box.querySelector(".kpi-value").textContent = text;
    box.dataset.met = met === null ? "" : met ? "yes" : "no";
  }

  function chart(recent) {
    const svg = document.getElementById("recent-chart");
    const longest = Math.max(1, ...recent.map((job) => job.seconds || 0));
    const slots = Math.max(recent.length, 30); // the API sends up to 30: newest at the right
    const width = 600 / slots;
    const offset = slots - recent.length;
    svg.replaceChildren(...recent.map((job, index) => {
      const height = Math.max(2, ((job.seconds || 0) / longest) * 110);
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("class", job.status === "completed" ? "bar" : "bar failed");
      bar.setAttribute("x", String((offset + index) * width + 1));
      bar.setAttribute("y", String(120 - height));
      bar.setAttribute("width", String(Math.max(width - 2, 1)));
      bar.setAttribute("height", String(height));
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${job.departmentId}: ${job.status}, ${duration(job.seconds)}`;
      bar.append(title);
      return bar;
    }));
  }

  async function loadKpis() {
    if (!PO.isAdmin()) return;
    let body;
    try {
      body = await PO.api("GET", "/api/metrics?window=24h");
    } catch (error) {
      return; // the fleet list still works; the figures are a bonus
    }
    const kpi = body.provisioning;
    const met = (value, ok) => (value === null ? null : ok(value));
    setKpi("kpi-success", percent(kpi.successRate), met(kpi.successRate, (v) => v > 0.95));
    setKpi("kpi-average", duration(kpi.averageSeconds), met(kpi.averageSeconds, (v) => v < 180));
    setKpi("kpi-rollback", percent(kpi.rollbackRate), met(kpi.rollbackRate, (v) => v < 0.05));
    setKpi("kpi-peak", String(kpi.peakConcurrent), null);
    chart(kpi.recent || []);
    document.getElementById("kpis").hidden = false;
  }

  function onFilter() {
    const params = new URLSearchParams(window.location.search);
    if (filter().value) params.set("status", filter().value);
    else params.delete("status");
    const search = params.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
    load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const wanted = new URLSearchParams(window.location.search).get("status");
    if (wanted) filter().value = wanted;
    filter().addEventListener("change", onFilter);
    document.getElementById("refresh").addEventListener("click", () => { loadKpis(); load(); });
    PO.start(() => { loadKpis(); load(); });
  });
})();
