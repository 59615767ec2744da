// The images of the daemon's host, with remove.
import { api, bytes, clock, el, every, main, showError } from "./common.js";

const root = main("Images");
const list = el("div", { id: "images" });
const message = el("p", { class: "error" });
root.append(message, list);

async function remove(ref) {
  if (!confirm(`Remove ${ref}?`)) return;
  try { await api(`/v1/images/${encodeURIComponent(ref)}`, { method: "DELETE" }); await refresh(); } catch (e) { showError(message, e); }
}

async function refresh() {
  const rows = await api("/v1/images");
  list.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["Name", "Tag", "ID", "Size", "Created", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => {
      const ref = r.tag ? `${r.name}:${r.tag}` : r.name;
      return el("tr", {}, el("td", {}, r.name), el("td", {}, r.tag || "–"), el("td", { class: "muted" }, (r.id || r.note || "").slice(0, 19)),
        el("td", { class: "num" }, bytes(r.size)), el("td", {}, clock(r.created)),
        el("td", {}, r.id ? el("button", { class: "danger", type: "button", onclick: () => remove(ref) }, "Remove") : ""));
    }))));
}

every(5000, refresh, (e) => showError(message, e));
