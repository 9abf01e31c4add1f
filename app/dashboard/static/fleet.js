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
    document.getElementById("refresh").addEventListener("click", load);
    PO.start(load);
  });
})();
