// A student's page: their sandbox's terminal and nothing else. The link carries the token in
// its fragment (never sent to a server); it becomes this browser's session, then leaves the
// address bar.
import { api, el, every, pageData } from "./common.js";

const data = pageData();
const seatPath = `/v1/classes/${encodeURIComponent(data.class)}/students/${encodeURIComponent(data.student)}`;
document.body.classList.add("student");
const root = document.getElementById("main");
const status = el("span", { class: "term-status", id: "term-status" }, "connecting…");
const note = el("span", { class: "term-status", id: "term-note" });
const restart = el("button", { type: "button", id: "restart", hidden: true, onclick: restartShell }, "Start a new shell");
const box = el("div", { class: "terminal-box", id: "terminal" });
root.replaceChildren(el("div", { class: "toolbar" }, el("strong", {}, `${data.class} · ${data.student}`), status, note,
  el("span", { class: "grow" }), restart), box);
let session = null;

async function signIn() {
  if (location.hash.length <= 1) return;
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname);
  const response = await fetch("/console/session", { method: "POST", credentials: "same-origin", headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error("this link's token is not valid (or its class has ended)");
}

function refuse(message) {
  status.textContent = message;
  status.className = "term-status warn";
  box.replaceChildren(el("p", { class: "error", id: "refused" }, message));
}

async function restartShell() {
  restart.hidden = true;
  await api(`${seatPath}/reset`, { method: "POST" });
  session.reconnect();
}

async function watchSeat() {
  const seat = await api(seatPath);
  const watching = (seat.connected.teacher || 0) > 0;
  note.textContent = seat.holder === "teacher" ? "your teacher has the keyboard" : watching ? "your teacher is watching" : "";
  note.className = seat.holder === "teacher" ? "term-status warn" : "term-status";
}

async function start() {
  if (!data.xterm) { refuse("xterm.js is not installed on this daemon: run scripts/setup.sh (npm ci in server/console/vendor)"); return; }
  try {
    await signIn();
    const seat = await api(seatPath);
    const { TermSession } = await import("./terminal.js");
    session = new TermSession(box, {
      socket: `${seatPath}/terminal`, resize: `${seatPath}/resize`, interrupt: `${seatPath}/interrupt`,
      mode: seat.terminal ? seat.terminal.mode : "pipe", write: true,
      onStatus: (state, reason) => { status.textContent = reason ? `${state}: ${reason}` : state; status.className = "term-status"; },
      onEnd: () => { restart.hidden = false; },
    });
    every(3000, watchSeat);
  } catch (e) {
    refuse(e.status === 404 || e.status === 401 || e.status === 403 ? "this terminal is not yours (or its class has ended)" : e.message);
  }
}

start();
