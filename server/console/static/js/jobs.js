// The jobs: newest first, filtered by status and name, updated every two seconds.
import { api, el, every, main, seconds, clock, showError, statusBadge } from "./common.js";

const STATUSES = ["", "queued", "running", "passed", "failed", "error", "timed_out", "cancelled"];
const root = main("Jobs");
const params = new URLSearchParams(location.search);
const status = el("select", { id: "filter-status", onchange: changed }, ...STATUSES.map((s) => el("option", { value: s }, s || "any status")));
const name = el("input", { id: "filter-name", type: "search", placeholder: "name contains…", oninput: changed });
status.value = params.get("status") || "";
name.value = params.get("name") || "";
const table = el("div", { id: "jobs" });
root.append(el("div", { class: "toolbar" }, status, name, el("span", { class: "grow" }),
  el("a", { class: "button", href: "/console/submit" }, "Submit a job")), table);

function changed() {
  const query = new URLSearchParams();
  if (status.value) query.set("status", status.value);
  if (name.value) query.set("name", name.value);
  history.replaceState(null, "", "?" + query.toString());
  refresh().catch((e) => showError(table, e));
}

function duration(row) {
  const start = Number(row.started_at || 0);
  if (!start) return "–";
  const end = Number(row.ended_at || 0) || Date.now() / 1000;
  return seconds(end - start);
}

function totals(row) {
  if (!row.junit) return el("span", { class: "muted" }, "–");
  const t = JSON.parse(row.junit);
  return el("span", { class: `headline ${t.failures || t.errors ? "bad" : "good"}` }, t.headline);
}

async function refresh() {
  const query = new URLSearchParams({ limit: "200" });
  if (status.value) query.set("status", status.value);
  if (name.value) query.set("name", name.value);
  const rows = await api(`/v1/jobs?${query}`);
  if (!rows.length) { table.replaceChildren(el("p", { class: "muted" }, "No jobs.")); return; }
  table.replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, ...["Status", "Name", "ID", "Worker", "Duration", "Tests", "Submitted"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((row) => el("tr", { "data-job": row.id },
      el("td", {}, statusBadge(row.status)),
      el("td", {}, el("a", { href: `/console/jobs/${row.id}` }, row.name || row.id)),
      el("td", { class: "muted" }, row.id),
      el("td", {}, row.worker || "–"),
      el("td", { class: "num" }, duration(row)),
      el("td", {}, totals(row)),
      el("td", { class: "muted" }, clock(row.submitted_at)))))));
}

every(2000, refresh, (e) => showError(table, e));
