// A job's JUnit report: the totals as pytest prints them, the failures first with their
// messages and tracebacks, then every suite's cases in a table that sorts.
import { el, seconds, sortableTable } from "./common.js";

const ORDER = { failed: 0, error: 1, skipped: 2, passed: 3 };

export function renderReport(report) {
  const bad = report.failures + report.errors > 0;
  const parts = [el("p", {}, el("span", { class: `headline ${bad ? "bad" : "good"}`, id: "junit-headline" },
    `${"=".repeat(8)} ${report.headline} ${"=".repeat(8)}`))];
  if (report.problems && report.problems.length) {
    parts.push(el("ul", { class: "error" }, ...report.problems.map((p) => el("li", {}, p))));
  }
  if (report.failed.length) {
    parts.push(el("h3", {}, `Failures (${report.failed.length})`),
      el("div", { id: "failures" }, ...report.failed.map((c) => el("div", { class: "failure" },
        el("h3", {}, `${c.outcome === "error" ? "ERROR" : "FAILED"} ${c.nodeid}`),
        c.message ? el("div", { class: "message" }, c.message) : null,
        c.text ? el("pre", {}, c.text) : null))));
  }
  const cases = [];
  for (const suite of report.suites) {
    for (const c of suite.cases) cases.push({ ...c, suite: suite.name, rank: ORDER[c.outcome] ?? 9 });
  }
  cases.sort((a, b) => a.rank - b.rank || b.time - a.time);
  const suiteRow = (s) => el("tr", {}, el("td", {}, s.name || "–"),
    ...[s.tests, s.failures, s.errors, s.skipped].map((n) => el("td", { class: "num" }, String(n))));
  parts.push(el("h3", {}, `Suites (${report.suites.length})`),
    el("table", { id: "suites" },
      el("thead", {}, el("tr", {}, el("th", {}, "Suite"),
        ...["Tests", "Failures", "Errors", "Skipped"].map((h) => el("th", { class: "num" }, h)))),
      el("tbody", {}, ...report.suites.map(suiteRow))),
    el("h3", {}, `Cases (${cases.length})`),
    sortableTable([
      { title: "Outcome", key: "rank", num: false, render: (c) => c.outcome },
      { title: "Suite", key: "suite" },
      { title: "Test", key: "name" },
      { title: "Duration", key: "time", num: true, render: (c) => seconds(c.time) },
    ], cases, { rowClass: (c) => `case-${c.outcome}` }));
  const table = parts[parts.length - 1];
  table.id = "cases";
  return el("div", { id: "junit" }, ...parts);
}
