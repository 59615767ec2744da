// What every page of the console uses: the API with the session, elements, formats.

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

// A request to the daemon's API on the session cookie. Changes carry the header the daemon
// asks of cookie sessions (a cross-site form cannot send it).
export async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const h = { "X-Sandbox-Console": "1", ...headers };
  if (json !== undefined) { h["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  const response = await fetch(path, { method, headers: h, body, credentials: "same-origin" });
  if (response.status === 401 && !location.pathname.startsWith("/console/student/")) {
    location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new ApiError("sign in first", 401);
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError((data && data.message) || response.statusText, response.status);
  return data;
}

// el("a", {href: "/x", class: "y"}, "text", child...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

export function pageData() {
  return JSON.parse(document.getElementById("main").dataset.page || "{}");
}

export function main(title) {
  const root = document.getElementById("main");
  root.replaceChildren(el("h1", {}, title));
  return root;
}

export function statusBadge(status) {
  const word = String(status || "?");
  return el("span", { class: `status ${word.split(" ")[0]}` }, word);
}

export function seconds(value) {
  if (value === null || value === undefined || value === "" || isNaN(value)) return "–";
  const s = Number(value);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function clock(epoch) {
  if (!epoch) return "–";
  return new Date(Number(epoch) * 1000).toLocaleString();
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n), i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// Run fn now and every `ms` while the page is visible; errors are shown, not thrown.
export function every(ms, fn, onError = (e) => console.warn(e)) {
  let timer = null;
  const tick = async () => {
    try { await fn(); } catch (e) { onError(e); }
    timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
  };
  tick();
  return () => clearTimeout(timer);
}

export function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

export function showError(where, error) {
  where.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
}

// A table whose columns sort when their header is clicked: columns = [{title, key, num, render}].
export function sortableTable(columns, rows, { rowClass } = {}) {
  let sortKey = null, desc = false;
  const tbody = el("tbody");
  const heads = columns.map((c) => el("th", { class: `sortable${c.num ? " num" : ""}`, onclick: () => sortBy(c) }, c.title));
  const draw = () => {
    const sorted = [...rows];
    if (sortKey) {
      sorted.sort((a, b) => {
        const x = a[sortKey.key], y = b[sortKey.key];
        const order = sortKey.num ? (Number(x) || 0) - (Number(y) || 0) : String(x).localeCompare(String(y));
        return desc ? -order : order;
      });
    }
    tbody.replaceChildren(...sorted.map((row) => el("tr", { class: rowClass ? rowClass(row) : "" },
      ...columns.map((c) => el("td", { class: c.num ? "num" : "" }, c.render ? c.render(row) : String(row[c.key] ?? ""))))));
  };
  const sortBy = (column) => {
    desc = sortKey === column ? !desc : false;
    sortKey = column;
    heads.forEach((h, i) => { h.classList.remove("sorted-asc", "sorted-desc"); if (columns[i] === column) h.classList.add(desc ? "sorted-desc" : "sorted-asc"); });
    draw();
  };
  draw();
  return el("table", {}, el("thead", {}, el("tr", {}, heads)), tbody);
}

const logout = document.getElementById("logout");
if (logout) {
  logout.addEventListener("click", async () => {
    await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
    location.assign("/console/login");
  });
}
