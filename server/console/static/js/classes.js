// The classes this token teaches, and a form to make one (the students' links are shown once).
import { api, clock, el, every, main, seconds, showError } from "./common.js";

const root = main("Classes");
const list = el("div", { id: "classes" });
const made = el("section", { id: "made" });
const message = el("div", { id: "class-error" });
const field = (id, label, attrs) => el("div", {}, el("label", { for: id }, label), el("input", { id, ...attrs }));
const form = el("form", { class: "stacked", id: "class-form", onsubmit: create },
  el("div", { class: "row" },
    field("class-name", "Name", { required: true, size: 16, pattern: "[a-z0-9][a-z0-9\\-]*" }),
    field("class-students", "Students", { type: "number", min: 1, max: 200, value: 30 }),
    field("class-image", "Image", { value: "busybox", size: 14 }),
    field("class-ttl", "Lasts", { value: "2h", size: 6 })),
  el("div", { class: "row" },
    field("class-memory", "Memory", { value: "256m", size: 6 }), field("class-cpus", "CPUs", { value: "0.25", size: 5 }),
    field("class-disk", "Disk", { value: "512m", size: 6 }), field("class-pids", "Processes", { value: "256", size: 5 }),
    el("div", {}, el("label", { for: "class-network" }, "Network"),
      el("select", { id: "class-network" }, el("option", { value: "none" }, "none"), el("option", { value: "class" }, "class")))),
  el("p", {}, el("label", {}, el("input", { type: "checkbox", id: "class-home" }), " persistent home per student (kept across a reset)"),
    el("label", {}, el("input", { type: "checkbox", id: "class-keep" }), " keep the recordings after the class")),
  el("button", { type: "submit", id: "create-class" }, "Start the class"));

function value(id) { return document.getElementById(id).value; }

async function create(event) {
  event.preventDefault();
  message.replaceChildren();
  try {
    const room = await api("/v1/classes", { method: "POST", json: {
      name: value("class-name"), students: Number(value("class-students")), image: value("class-image"), ttl: value("class-ttl"),
      memory: value("class-memory"), cpus: value("class-cpus"), disk: value("class-disk"), pids: value("class-pids"),
      network: value("class-network"), home_volume: document.getElementById("class-home").checked,
      keep_recordings: document.getElementById("class-keep").checked } });
    made.replaceChildren(el("h2", {}, `Links for ${room.name}: give each student theirs (shown only now)`),
      el("p", {}, el("a", { href: `/console/classes/${room.name}` }, "Open the teacher's page")),
      el("table", { class: "tokens" }, el("thead", {}, el("tr", {}, el("th", {}, "Student"), el("th", {}, "Link"))),
        el("tbody", {}, ...room.students.map((s) => el("tr", {}, el("td", {}, s.name), el("td", {}, el("a", { href: s.url, target: "_blank" }, s.url)))))));
    await refresh();
  } catch (e) { showError(message, e); }
}

async function refresh() {
  const rows = await api("/v1/classes");
  list.replaceChildren(rows.length ? el("table", {}, el("thead", {}, el("tr", {}, ...["Class", "Image", "Students", "Running", "Connected", "Started", "Time left"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, el("td", {}, el("a", { href: `/console/classes/${r.name}` }, r.name)), el("td", {}, r.image),
      el("td", { class: "num" }, String(r.students)), el("td", { class: "num" }, String(r.running)), el("td", { class: "num" }, String(r.connected)),
      el("td", {}, clock(r.created)), el("td", {}, seconds(r.left)))))) : el("p", { class: "muted" }, "No classes."));
}

root.append(list, el("h2", {}, "New class"), form, message, made);
every(3000, refresh, (e) => showError(message, e));
