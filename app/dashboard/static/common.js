/* Shared by every dashboard page: the token, API calls, small DOM helpers.
 * The token lives in sessionStorage (this tab, this session) and only ever
 * travels in the Authorization header. Text goes in through textContent,
 * never innerHTML: log lines and errors come from outside. */
"use strict";

const PO = (() => {
  const TOKEN_KEY = "po.dashboard.token";
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function claims() {
    const raw = token();
    if (!raw || raw.split(".").length !== 3) return null;
    try {
      const part = raw.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    } catch (_) {
      return null;
    }
  }

  const isAdmin = () => (claims() || {}).role === "admin";

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) showLogin("The token was refused (expired?). Paste a new one.");
    if (!response.ok) throw new ApiError(response.status, data.detail || data.message || response.statusText);
    return data;
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  }

  function setBadge(node, status) {
    const value = (status || "").toLowerCase();
    node.dataset.status = value;
    node.textContent = value ? value.replace(/_/g, " ") : "—";
  }

  function badge(status) {
    const node = el("span", { class: "badge" });
    setBadge(node, status);
    return node;
  }

  function when(iso) {
    if (!iso) return "—";
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
  }

  function seconds(value) {
    if (value === null || value === undefined) return "";
    return value < 10 ? `${value.toFixed(2)} s` : `${value.toFixed(1)} s`;
  }

  function show(id, visible) {
    document.getElementById(id).hidden = !visible;
  }

  function showLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    show("content", false);
    show("who", false);
    show("login", true);
    const error = document.getElementById("login-error");
    error.textContent = message || "";
    error.hidden = !message;
  }

  function showIdentity() {
    const who = claims() || {};
    document.getElementById("who-name").textContent = who.email || "token";
    document.getElementById("who-role").textContent =
      who.role === "department" ? `department ${who.departmentId}` : who.role || "";
    show("who", true);
  }

  async function signIn(event, onReady) {
    event.preventDefault();
    const input = document.getElementById("token-input");
    const value = input.value.trim().replace(/^Bearer\s+/i, "");
    input.value = "";
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      await api("GET", "/api/departments?perPage=1");
    } catch (error) {
      if (error.status !== 401) showLogin(`Could not sign in: ${error.message}`);
      return;
    }
    enter(onReady);
  }

  function enter(onReady) {
    show("login", false);
    showIdentity();
    show("content", true);
    onReady();
  }

  /* Runs onReady once a token is present, after asking for one if needed. */
  function start(onReady) {
    document.getElementById("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      window.location.reload();
    });
    document.getElementById("login-form").addEventListener("submit", (e) => signIn(e, onReady));
    if (token()) enter(onReady);
    else showLogin("");
  }

  return { ApiError, TERMINAL, api, badge, claims, el, isAdmin, seconds, setBadge, start, when };
})();
