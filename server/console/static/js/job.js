// One job: its facts, cancel and re-run, the live log, then its JUnit report and artifacts.
import { api, bytes, clock, el, main, pageData, seconds, showError, statusBadge } from "./common.js";
import { renderReport } from "./junit.js";
import { LogView } from "./logview.js";

const { id } = pageData();
const root = main(`Job ${id}`);
const facts = el("dl", { class: "facts", id: "facts" });
const actions = el("div", { class: "toolbar" });
const find = el("input", { type: "search", id: "log-search", placeholder: "search the log…" });
const found = el("span", { class: "muted", id: "log-found" });
const report = el("section", { id: "report" });
const artifacts = el("section", { id: "artifacts" });
const message = el("p", { class: "error" });
root.append(facts, actions, message,
  el("h2", {}, "Log"),
  el("div", { class: "toolbar" }, find, el("button", { type: "button", onclick: () => view.next() }, "Next"), found,
    el("span", { class: "grow" }),
    el("label", {}, el("input", { type: "checkbox", id: "log-follow", checked: true, onchange: (e) => { view.pinned = !e.target.checked; } }), " follow"),
    el("a", { class: "button", href: `/v1/jobs/${id}/log/text`, download: `job-${id}.log`, id: "download-log" }, "Download raw log")));
const view = new LogView(root, { onEvent: (event) => { if (event.kind === "eof") ended(); } });
root.append(el("h2", {}, "Test report"), report, el("h2", {}, "Artifacts"), artifacts);
report.append(el("p", { class: "muted" }, "The report comes once the job has ended."));
const atBottom = view.atBottom.bind(view);
view.atBottom = () => !view.pinned && atBottom();
find.addEventListener("input", () => { const n = view.search(find.value); found.textContent = find.value ? `${n} lines` : ""; });

async function showFacts() {
  const job = await api(`/v1/jobs/${id}`);
  document.title = `${job.name} · sandbox`;
  root.querySelector("h1").textContent = `${job.name} `;
  root.querySelector("h1").append(statusBadge(job.status));
  const started = Number(job.started_at || 0), end = Number(job.ended_at || 0);
  const rows = [["ID", job.id], ["Status", job.status], ["Worker", job.worker || "–"], ["Queue", job.queue || "–"],
    ["Submitted", clock(job.submitted_at)], ["Duration", started ? seconds((end || Date.now() / 1000) - started) : "–"]];
  if (job.error) rows.push(["Error", job.error]);
  facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  const final = !["queued", "running"].includes(job.status);
  actions.replaceChildren(
    el("button", { type: "button", id: "cancel", disabled: final, onclick: cancel }, "Cancel"),
    el("button", { type: "button", id: "rerun", onclick: rerun }, "Re-run"));
  return job;
}

async function cancel() {
  try { await api(`/v1/jobs/${id}/cancel`, { method: "POST" }); await showFacts(); } catch (e) { showError(message, e); }
}

async function rerun() {
  try {
    const made = await api(`/v1/jobs/${id}/rerun`, { method: "POST" });
    location.assign(`/console/jobs/${made.jobs[0].id}`);
  } catch (e) { showError(message, e); }
}

async function ended() {
  await showFacts().catch(() => {});
  try {
    report.replaceChildren(renderReport(await api(`/v1/jobs/${id}/junit`)));
  } catch (e) {
    report.replaceChildren(el("p", { class: "muted" }, e.status === 404 ? "No JUnit report." : e.message));
  }
  const list = await api(`/v1/jobs/${id}/artifacts`).catch(() => []);
  artifacts.replaceChildren(list.length ? el("ul", {}, ...list.map((a) => el("li", {},
    a.stored ? el("a", { href: `/v1/jobs/${id}/artifacts/${a.path}`, download: a.path.split("/").pop() }, a.path) : a.path,
    el("span", { class: "muted" }, ` ${bytes(a.size)}${a.stored ? "" : " (over the size cap: not stored)"}`)))) : el("p", { class: "muted" }, "None."));
}

showFacts().then(() => view.follow(id)).catch((e) => showError(message, e));
