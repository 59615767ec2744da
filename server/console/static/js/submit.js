// Submit a job file (TOML, YAML or JSON) with its workspace (a tar or tar.gz), as
// `sandbox submit` or curl -F would; then go to the job.
import { api, el, main, showError } from "./common.js";

const root = main("Submit a job");
const file = el("input", { type: "file", id: "job-file", name: "job", accept: ".toml,.yaml,.yml,.json" });
const text = el("textarea", { id: "job-text", rows: 12, placeholder: 'name = "tests"\nimage = "busybox"\n[[steps]]\nname = "test"\nrun = "echo hi"' });
const format = el("select", { id: "job-format" }, ...["toml", "yaml", "json"].map((f) => el("option", { value: f }, f)));
const workspace = el("input", { type: "file", id: "workspace", name: "workspace", accept: ".tar,.tar.gz,.tgz" });
const queue = el("input", { id: "queue", value: "default", size: 16 });
const message = el("div", { id: "submit-error" });

async function submit(event) {
  event.preventDefault();
  const form = new FormData();
  if (file.files.length) form.append("job", file.files[0]);
  else if (text.value.trim()) form.append("job", new Blob([text.value], { type: "text/plain" }), `job.${format.value}`);
  else { showError(message, new Error("choose a job file or write one")); return; }
  if (workspace.files.length) form.append("workspace", workspace.files[0]);
  try {
    const made = await api(`/v1/jobs?queue=${encodeURIComponent(queue.value || "default")}`, { method: "POST", body: form });
    if (made.jobs.length === 1) location.assign(`/console/jobs/${made.jobs[0].id}`);
    else message.replaceChildren(el("p", {}, "Submitted: "), el("ul", {}, ...made.jobs.map((j) => el("li", {}, el("a", { href: `/console/jobs/${j.id}` }, `${j.name} (${j.id})`)))));
  } catch (e) { showError(message, e); }
}

root.append(el("form", { class: "stacked", id: "submit-form", onsubmit: submit },
  el("label", { for: "job-file" }, "Job file"), file,
  el("label", { for: "job-text" }, "…or write it here"), text,
  el("div", { class: "row" }, el("div", {}, el("label", { for: "job-format" }, "Format"), format),
    el("div", {}, el("label", { for: "queue" }, "Queue"), queue)),
  el("label", { for: "workspace" }, "Workspace (tar or tar.gz, optional)"), workspace,
  el("p", {}, el("button", { type: "submit", id: "submit" }, "Submit"))), message);
