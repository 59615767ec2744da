// One sandbox: its state, stop and remove, its output (live), and its terminal when it
// takes input.
import { api, bytes, clock, el, every, main, pageData, seconds, showError, statusBadge } from "./common.js";
import { AnsiState } from "./ansi.js";

const { id, xterm } = pageData();
const root = main(`Sandbox ${id}`);
const facts = el("dl", { class: "facts", id: "facts" });
const actions = el("div", { class: "toolbar" });
const message = el("p", { class: "error" });
const area = el("section", { id: "sandbox-io" });
root.append(facts, actions, message, area);
let shown = null;

async function act(what) {
  try {
    if (what === "stop") await api(`/v1/sandboxes/${id}/stop?timeout=5`, { method: "POST" });
    else { await api(`/v1/sandboxes/${id}?force=true`, { method: "DELETE" }); location.assign("/console/sandboxes"); }
  } catch (e) { showError(message, e); }
}

async function refresh() {
  const s = await api(`/v1/sandboxes/${id}`);
  root.querySelector("h1").replaceChildren(`${s.name || s.id.slice(0, 12)} `, statusBadge(s.status));
  const rows = [["ID", s.id], ["Image", s.image], ["Command", (s.command || []).join(" ")], ["Owner", s.owner || "–"], ["Created", clock(s.created)]];
  if (s.status === "running") {
    const stats = await api(`/v1/sandboxes/${id}/stats`).catch(() => null);
    if (stats) rows.push(["Memory", bytes(stats.memory_current ?? stats.peak_memory)], ["CPU time", seconds(stats.cpu_total)]);
  }
  if (s.exit_code !== undefined && s.exit_code !== null) rows.push(["Exit status", String(s.exit_code)]);
  facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  actions.replaceChildren(
    s.status === "running" ? el("button", { type: "button", id: "stop", onclick: () => act("stop") }, "Stop") : "",
    el("button", { type: "button", class: "danger", id: "remove", onclick: () => act("rm") }, "Remove"));
  if (shown === null) show(s);
}

function show(s) {
  shown = s.terminal && s.status === "running" ? "terminal" : "logs";
  if (shown === "terminal" && xterm) return showTerminal(s);
  const pre = el("div", { class: "log", id: "sandbox-log" });
  area.replaceChildren(el("h2", {}, "Output"), pre);
  const ansi = new AnsiState();
  const source = new EventSource(`/v1/sandboxes/${id}/logs?follow=true&format=sse`);
  const onRecord = (m) => {
    const r = JSON.parse(m.data);
    const text = r.data ?? atob(r.b64 || "");
    for (const line of text.split("\n").filter((l, i, a) => l || i < a.length - 1)) {
      pre.insertAdjacentHTML("beforeend", `<div class="l${r.stream === "stderr" ? " err" : ""}"><span class="t">${ansi.html(line)}</span></div>`);
    }
  };
  source.addEventListener("stdout", onRecord);
  source.addEventListener("stderr", onRecord);
  source.addEventListener("error", () => source.close());
}

async function showTerminal(s) {
  const box = el("div", { class: "terminal-box", id: "terminal" });
  const status = el("span", { class: "term-status", id: "term-status" });
  area.replaceChildren(el("div", { class: "toolbar" }, el("h2", {}, "Terminal"), status), box);
  const { TermSession } = await import("./terminal.js");
  new TermSession(box, { socket: `/v1/sandboxes/${id}/terminal`, resize: `/v1/sandboxes/${id}/resize`,
    interrupt: `/v1/sandboxes/${id}/kill?signal=SIGINT`, mode: s.terminal, write: true,
    onStatus: (state, reason) => { status.textContent = reason ? `${state}: ${reason}` : state; } });
}

every(3000, refresh, (e) => showError(message, e));
