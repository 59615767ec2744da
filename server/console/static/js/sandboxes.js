// The sandboxes this token sees, live; stop and remove; a new shell to type in.
import { api, clock, el, every, main, showError, statusBadge } from "./common.js";

const root = main("Sandboxes");
const list = el("div", { id: "sandboxes" });
const message = el("p", { class: "error" });
const showAll = el("input", { type: "checkbox", id: "show-all", onchange: () => refresh() });
const image = el("input", { id: "shell-image", value: "busybox", size: 14 });
const command = el("input", { id: "shell-command", value: "/bin/sh -i", size: 20 });

async function newShell(event) {
  event.preventDefault();
  try {
    const made = await api("/v1/sandboxes?start=true&stdin=true", { method: "POST", json: {
      image: image.value, command: command.value.split(/\s+/).filter(Boolean), limits: { memory: "256m", pids: 256 } } });
    location.assign(`/console/sandboxes/${made.id}`);
  } catch (e) { showError(message, e); }
}

async function act(id, what) {
  try {
    if (what === "stop") await api(`/v1/sandboxes/${id}/stop?timeout=5`, { method: "POST" });
    else await api(`/v1/sandboxes/${id}?force=true`, { method: "DELETE" });
    await refresh();
  } catch (e) { showError(message, e); }
}

async function refresh() {
  const rows = await api(`/v1/sandboxes${showAll.checked ? "?all=true" : ""}`);
  if (!rows.length) { list.replaceChildren(el("p", { class: "muted" }, "No sandboxes.")); return; }
  list.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["Status", "ID", "Name", "Image", "Command", "Owner", "Created", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", { "data-sandbox": r.id },
      el("td", {}, statusBadge(r.status)), el("td", {}, el("a", { href: `/console/sandboxes/${r.id}` }, r.id.slice(0, 12))),
      el("td", {}, r.name || "–"), el("td", {}, r.image), el("td", { class: "muted" }, (r.command || []).join(" ")),
      el("td", {}, r.owner || "–"), el("td", {}, clock(r.created)),
      el("td", {}, r.status === "running" ? el("button", { type: "button", onclick: () => act(r.id, "stop") }, "Stop") : "",
        " ", el("button", { type: "button", class: "danger", onclick: () => act(r.id, "rm") }, "Remove")))))));
}

root.append(el("form", { class: "toolbar", onsubmit: newShell }, el("strong", {}, "New shell:"), image, command,
  el("button", { type: "submit", id: "new-shell" }, "Start")),
  el("div", { class: "toolbar" }, el("label", {}, showAll, " show exited and the host's others")), message, list);
every(2000, refresh, (e) => showError(message, e));
