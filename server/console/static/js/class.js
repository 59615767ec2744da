// The teacher's page: each student's state (connected, CPU, memory), their terminal to watch
// or take over, reset, recordings; extend or end the class.
import { api, bytes, el, every, main, pageData, seconds, showError } from "./common.js";

const { name, xterm } = pageData();
const base = `/v1/classes/${encodeURIComponent(name)}`;
const root = main(`Class ${name}`);
const info = el("p", { id: "class-info" });
const seats = el("div", { id: "seats" });
const message = el("div", { class: "error" });
const termTitle = el("h2", {}, "Terminal");
const termStatus = el("span", { class: "term-status", id: "term-status" }, "choose a student to watch");
const box = el("div", { class: "terminal-box", id: "terminal" });
let session = null;

root.append(info, el("div", { class: "toolbar" },
  el("button", { type: "button", id: "extend", onclick: () => extend("30m") }, "Extend 30 min"),
  el("button", { type: "button", class: "danger", id: "end-class", onclick: endClass }, "End the class")), message,
  el("div", { class: "class-grid" }, seats, el("section", {}, el("div", { class: "toolbar" }, termTitle, termStatus), box)));

async function extend(by) {
  try { await api(`${base}/extend?by=${by}`, { method: "POST" }); await refresh(); } catch (e) { showError(message, e); }
}

async function endClass() {
  if (!confirm(`End ${name} now? Every student's sandbox goes.`)) return;
  try { await api(base, { method: "DELETE" }); location.assign("/console/classes"); } catch (e) { showError(message, e); }
}

async function reset(student) {
  if (!confirm(`Reset ${student}'s sandbox to the image?`)) return;
  try { await api(`${base}/students/${student}/reset`, { method: "POST" }); await refresh(); } catch (e) { showError(message, e); }
}

async function open(seat, mode) {
  if (!xterm) { termStatus.textContent = "xterm.js is not installed: run scripts/setup.sh"; return; }
  session?.dispose();
  box.replaceChildren();
  const path = `${base}/students/${seat.name}`;
  termTitle.textContent = `${seat.name} (${mode === "watch" ? "watching" : "you have the keyboard"})`;
  const { TermSession } = await import("./terminal.js");
  session = new TermSession(box, { socket: `${path}/terminal?mode=${mode}`, resize: `${path}/resize`, interrupt: `${path}/interrupt`,
    mode: seat.mode || "pipe", write: mode === "control",
    onStatus: (state, reason) => { termStatus.textContent = reason ? `${state}: ${reason}` : state; } });
}

function recordings(seat) {
  return (seat.recordings || []).map((n) => el("a", { href: `${base}/students/${seat.name}/recordings/${n}`,
    download: `${seat.name}.${n}.cast` }, `#${n} `));
}

async function refresh() {
  const room = await api(base);
  info.textContent = `${room.students} students · image ${room.image} · ${room.running} running · ${room.connected} connected · ${seconds(room.left)} left`;
  const rows = room.seats.map((s) => el("tr", { "data-seat": s.name },
    el("td", {}, el("span", { class: `dot${s.connected.owner ? " on" : ""}`, title: s.connected.owner ? "connected" : "not connected" }), s.name),
    el("td", {}, s.status), el("td", { class: "num" }, s.cpu_percent === null ? "–" : `${s.cpu_percent}%`),
    el("td", { class: "num" }, bytes(s.memory)),
    el("td", {}, el("button", { type: "button", class: "watch", onclick: () => open(s, "watch") }, "Watch"), " ",
      el("button", { type: "button", class: "take-over", onclick: () => open(s, "control") }, "Take over"), " ",
      el("button", { type: "button", class: "reset danger", onclick: () => reset(s.name) }, "Reset")),
    el("td", {}, ...recordings(s))));
  seats.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["Student", "Sandbox", "CPU", "Memory", "", "Recordings"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows)));
}

every(2000, refresh, (e) => showError(message, e));
