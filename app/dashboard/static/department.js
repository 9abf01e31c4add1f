/* /dashboard/<departmentId>: the current or last job, followed live over SSE. */
"use strict";

(() => {
  const MAX_LOG_LINES = 500;
  const MAX_BACKOFF_MS = 30000;
  const live = {
    jobId: null,
    source: null,
    lastEventId: "",
    ended: false,
    backoff: 1000,
    reconnectTimer: null,
    steps: new Map(),
    department: null,
  };

  const $ = (id) => document.getElementById(id);
  const departmentId = () => $("department").dataset.departmentId;

  function setLive(mode, text) {
    $("live").dataset.live = mode;
    $("live").textContent = text;
  }

  function pageError(message) {
    $("page-error").textContent = message || "";
    $("page-error").hidden = !message;
  }

  /* ---- rendering ---------------------------------------------------- */

  function stepNode(name) {
    let node = document.querySelector(`#steps li[data-step="${CSS.escape(name)}"]`);
    if (!node) {
      node = PO.el("li", { class: "step", dataset: { step: name, status: "pending" } },
        PO.el("span", { class: "dot", "aria-hidden": "true" }),
        PO.el("div", { class: "step-main" },
          PO.el("div", { class: "step-title" }, PO.el("strong", { text: name })),
          PO.el("div", { class: "step-meta" },
            PO.el("span", { class: "badge step-status" }),
            PO.el("span", { class: "attempts" }),
            PO.el("span", { class: "duration" })),
          PO.el("p", { class: "step-error error", hidden: "" })));
      $("steps").append(node);
    }
    return node;
  }

  function renderStep(step) {
    live.steps.set(step.name, step.status);
    const node = stepNode(step.name);
    if (step.action === "delete") {
      // A deprovisioning job runs each step's compensation, not its creation.
      const title = node.querySelector(".step-title");
      title.replaceChildren(PO.el("strong", { text: step.name }), " ",
        PO.el("span", { class: "muted", text: "Removing its resources" }));
    }
    node.dataset.status = step.status;
    PO.setBadge(node.querySelector(".step-status"), step.status);
    node.querySelector(".attempts").textContent = `attempts: ${step.attempts || 0}`;
    node.querySelector(".duration").textContent = PO.seconds(step.durationSeconds);
    const error = node.querySelector(".step-error");
    error.textContent = step.error || "";
    error.hidden = !step.error;
  }

  function renderProgress() {
    const total = live.steps.size || 1;
    const done = [...live.steps.values()].filter((s) => s === "completed").length;
    const percentage = Math.round((100 * done) / total);
    $("progress").value = percentage;
    $("progress-label").textContent = `${percentage}%`;
  }

  function renderStatus(status) {
    PO.setBadge($("job-status"), status);
    updateDeprovisionButton();
  }

  function renderJobError(error) {
    const text = error ? `${error.step || "job"} (attempt ${error.attempt ?? "?"}): ${error.message}` : "";
    $("job-error").textContent = text;
    $("job-error").hidden = !text;
  }

  function renderView(view) {
    $("job-id").textContent = view.provisioningId;
    $("job-kind").textContent = view.kind;
    renderStatus(view.status);
    $("current-step").textContent = view.currentStep || "—";
    $("started-at").textContent = PO.when(view.startedAt);
    $("estimated").textContent = view.completedAt ? "—" : PO.when(view.estimatedCompletion);
    $("completed-at").textContent = PO.when(view.completedAt);
    renderJobError(view.error);
    const names = new Set(view.steps.map((s) => s.name));
    for (const node of document.querySelectorAll("#steps li")) {
      node.hidden = !names.has(node.dataset.step);
    }
    live.steps.clear();
    view.steps.forEach(renderStep);
    renderProgress();
  }

  function appendLog(line) {
    const log = $("log-tail");
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(PO.el("span", { class: "line", text: `${line}\n` }));
    while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
    $("log-count").textContent = `${log.childElementCount} lines`;
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function resetLog(lines) {
    $("log-tail").replaceChildren();
    lines.forEach(appendLog);
    $("log-count").textContent = `${lines.length} lines`;
  }

  /* ---- the live stream ---------------------------------------------- */

  const handlers = {
    state(event) {
      renderStatus(event.data.state);
      $("current-step").textContent = event.data.state.toLowerCase().replace(/_/g, " ");
    },
    step(event) {
      renderStep({ name: event.data.step, ...event.data });
      renderProgress();
    },
    log(event) {
      appendLog(`[${event.at}] [${event.data.level}] ${event.data.message}`);
    },
    end(event) {
      live.ended = true;
      closeStream();
      renderStatus(event.status);
      setLive("ended", `ended: ${event.status}`);
      refreshAfterEnd();
    },
  };

  function listen(source, name) {
    source.addEventListener(name, (message) => {
      if (source !== live.source) return;
      if (message.lastEventId) live.lastEventId = message.lastEventId;
      handlers[name](JSON.parse(message.data));
    });
  }

  function closeStream() {
    clearTimeout(live.reconnectTimer);
    if (live.source) live.source.close();
    live.source = null;
  }

  /* A ticket is good for a minute, so every (re)connection asks for a new one;
   * EventSource's own reconnect would replay an expired ticket. */
  async function openStream() {
    closeStream();
    const jobId = live.jobId;
    let ticket;
    try {
      ({ ticket } = await PO.api("POST", `/api/provision-status/${jobId}/events/ticket`));
    } catch (error) {
      if (error.status !== 401) scheduleReconnect(`ticket refused: ${error.message}`);
      return;
    }
    if (jobId !== live.jobId || live.ended) return;
    const query = new URLSearchParams({ ticket });
    if (live.lastEventId) query.set("lastEventId", live.lastEventId);
    const source = new EventSource(`/api/provision-status/${jobId}/events?${query}`);
    live.source = source;
    Object.keys(handlers).forEach((name) => listen(source, name));
    source.onopen = () => {
      live.backoff = 1000;
      setLive("live", "live");
    };
    source.onerror = () => {
      if (source !== live.source || live.ended) return;
      closeStream();
      scheduleReconnect("reconnecting…");
    };
  }

  function scheduleReconnect(text) {
    setLive("reconnecting", text);
    live.reconnectTimer = setTimeout(openStream, live.backoff);
    live.backoff = Math.min(live.backoff * 2, MAX_BACKOFF_MS);
  }

  async function refreshAfterEnd() {
    try {
      renderView(await PO.api("GET", `/api/provision-status/${live.jobId}`));
    } catch (error) {
      pageError(`Could not refresh the job: ${error.message}`);
    }
    loadDepartment();
    loadHealth();
  }

  async function follow(jobId) {
    closeStream();
    Object.assign(live, { jobId, lastEventId: "", ended: false, backoff: 1000 });
    const view = await PO.api("GET", `/api/provision-status/${jobId}`);
    renderView(view);
    if (PO.TERMINAL.has(view.status)) {
      live.ended = true;
      resetLog(view.logs);
      setLive("ended", `ended: ${view.status}`);
      return;
    }
    // The stream replays the job from its first event, log lines included.
    resetLog([]);
    setLive("connecting", "connecting…");
    openStream();
  }

  /* ---- health, department, deprovisioning --------------------------- */

  async function loadHealth() {
    const rows = $("health-rows");
    $("recheck").disabled = true;
    try {
      const result = await PO.api("GET", `/api/departments/${encodeURIComponent(departmentId())}/health`);
      PO.setBadge($("health-overall"), result.healthy ? "healthy" : "unhealthy");
      rows.replaceChildren(...result.checks.map((check) => PO.el("tr", {},
        PO.el("td", { text: check.name }),
        PO.el("td", {}, PO.badge(check.healthy ? "healthy" : "unhealthy")),
        PO.el("td", { class: "num", text: `${Math.round(check.latency)} ms` }),
        PO.el("td", { class: "detail", text: check.detail || "" }))));
      $("health-last").textContent = `Checked ${PO.when(result.lastCheck)}`;
    } catch (error) {
      $("health-last").textContent = `Health check failed: ${error.message}`;
    } finally {
      $("recheck").disabled = false;
    }
  }

  async function loadDepartment() {
    try {
      const query = new URLSearchParams({ perPage: "500" });
      const body = await PO.api("GET", `/api/departments?${query}`);
      live.department = body.departments.find((d) => d.departmentId === departmentId()) || null;
    } catch (_) {
      live.department = null;
    }
    updateDeprovisionButton();
  }

  function updateDeprovisionButton() {
    const status = live.department ? live.department.status : "";
    const jobRunning = !PO.TERMINAL.has($("job-status").dataset.status);
    $("deprovision").disabled = jobRunning || !status || status === "DEPROVISIONED";
  }

  function openConfirm() {
    $("confirm-input").value = "";
    $("confirm-go").disabled = true;
    $("confirm-dialog").showModal();
    $("confirm-input").focus();
  }

  async function deprovision(event) {
    event.preventDefault();
    $("confirm-dialog").close();
    $("deprovision").disabled = true;
    try {
      const body = await PO.api("DELETE", `/api/deprovision/${encodeURIComponent(departmentId())}`,
        { confirm: departmentId() });
      pageError("");
      await follow(body.provisioningId);
    } catch (error) {
      pageError(`Deprovisioning refused: ${error.message}`);
      updateDeprovisionButton();
    }
  }

  function wireAdmin() {
    if (!PO.isAdmin()) return;
    $("admin-actions").hidden = false;
    $("deprovision").addEventListener("click", openConfirm);
    $("confirm-input").addEventListener("input", () => {
      $("confirm-go").disabled = $("confirm-input").value.trim() !== departmentId();
    });
    $("confirm-cancel").addEventListener("click", () => $("confirm-dialog").close());
    $("confirm-form").addEventListener("submit", deprovision);
  }

  async function start() {
    wireAdmin();
    $("recheck").addEventListener("click", loadHealth);
    let latest;
    try {
      latest = await PO.api("GET", `/api/departments/${encodeURIComponent(departmentId())}/latest-job`);
    } catch (error) {
      pageError(error.status === 404 ? "No job for this department yet." : error.message);
      return;
    }
    await follow(latest.provisioningId);
    loadDepartment();
    loadHealth();
  }

  document.addEventListener("DOMContentLoaded", () => PO.start(start));
})();
