// A job's live log: one foldable section per step, numbered lines that link to themselves,
// ANSI colours, search; it follows the end while the reader is there.
//
// Events (the daemon's SSE, jobs.events) are queued as they come and drawn once per
// animation frame, as HTML built in one string per section: a job printing thousands of
// lines a second costs a few DOM insertions a frame, not one per line. Lines are grouped in
// chunks of CHUNK lines that the browser skips laying out while they are off screen.
import { AnsiState, plain } from "./ansi.js";

const CHUNK = 1000;
const decoder = () => new TextDecoder("utf-8");

function bytesOf(event) {
  if (event.b64 !== undefined) return Uint8Array.from(atob(event.b64), (c) => c.charCodeAt(0));
  return null;
}

export class LogView {
  constructor(container, { onEvent = () => {} } = {}) {
    this.root = document.createElement("div");
    this.root.className = "log";
    this.root.id = "log";
    container.append(this.root);
    this.onEvent = onEvent;
    this.count = 0;          // lines drawn
    this.texts = [""];       // plain text of each line, by number (1-based)
    this.queue = [];
    this.section = null;
    this.open = {};          // stream -> the line still being written {n, text}
    this.ansi = {};          // stream -> AnsiState
    this.decoders = {};
    this.query = "";
    this.hits = [];
    this.hitIndex = -1;
    this.scrolledToHash = false;
    this.frame = null;
  }

  // Follow /v1/jobs/{id}/log (EventSource resumes with Last-Event-ID by itself).
  follow(jobId) {
    const source = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/log`);
    for (const kind of ["step-start", "out", "step-end", "note", "eof"]) {
      source.addEventListener(kind, (message) => {
        const event = JSON.parse(message.data);
        if (kind === "eof") source.close();
        this.push(event);
      });
    }
    this.source = source;
    return source;
  }

  push(event) {
    this.queue.push(event);
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.draw());
  }

  atBottom() {
    const r = this.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < 48;
  }

  draw() {
    this.frame = null;
    const follow = this.atBottom();
    const events = this.queue;
    this.queue = [];
    let html = "";
    const flush = () => { if (html) { this.body().insertAdjacentHTML("beforeend", html); html = ""; } };
    for (const event of events) {
      if (event.kind === "out") {
        html += this.text(event);
        if (this.chunkFull) { flush(); this.newChunk(); }
      } else {
        flush();
        this.structural(event);
        this.onEvent(event);
      }
    }
    flush();
    this.refreshOpenLines();
    if (follow) this.root.scrollTop = this.root.scrollHeight;
    this.toHash();
  }

  body() {
    if (!this.section) this.startSection("output", "", "");
    return this.chunk;
  }

  newChunk() {
    this.chunk = document.createElement("div");
    this.chunk.className = "chunk";
    this.chunkLines = 0;
    this.chunkFull = false;
    this.section.append(this.chunk);
  }

  startSection(title, run, step) {
    this.closeOpenLines();
    const details = document.createElement("details");
    details.open = true;
    details.dataset.step = step;
    const summary = document.createElement("summary");
    const first = run.split("\n")[0];
    const shown = first.length > 120 || run.includes("\n") ? `${first.slice(0, 120)} …` : first;
    summary.textContent = title + (run ? `: ${shown}` : "");
    if (run) summary.title = run;
    details.append(summary);
    this.root.append(details);
    this.section = details;
    this.newChunk();
  }

  structural(event) {
    const f = event.fields || {};
    if (event.kind === "step-start") {
      this.startSection(`[${f.index}/${f.count}] ${event.step}`, f.run || "", event.step);
    } else if (event.kind === "step-end") {
      this.closeOpenLines();
      const summary = this.section && this.section.querySelector("summary");
      if (summary) {
        const failed = f.status && f.status !== "passed";
        const how = `${f.status || "?"}${f.exit_code && f.exit_code !== "0" ? ` (exit ${f.exit_code})` : ""}`;
        const took = document.createElement("span");
        took.className = "took";
        took.textContent = `${how} in ${Number(f.duration || 0).toFixed(2)}s${f.message ? `; ${f.message}` : ""}`;
        summary.append(took);
        if (failed) summary.classList.add("bad");
      }
    } else if (event.kind === "note") {
      this.closeOpenLines();
      this.body().insertAdjacentHTML("beforeend", this.lineHtml(`--- ${event.data || ""}`, "note", null));
    } else if (event.kind === "eof") {
      this.closeOpenLines();
      const end = document.createElement("div");
      end.className = "eof";
      end.id = "log-end";
      end.textContent = `job ${f.status || "ended"}${f.headline ? `: ${f.headline}` : ""}${f.error ? ` (${f.error})` : ""}`;
      this.root.append(end);
    }
  }

  // The HTML of an output event: whole lines, and the start of the line not yet ended.
  text(event) {
    const stream = event.stream || "stdout";
    const raw = bytesOf(event);
    const dec = this.decoders[stream] || (this.decoders[stream] = decoder());
    const text = raw ? dec.decode(raw, { stream: true }) : event.data || "";
    const parts = text.split("\n");
    let html = "";
    let open = this.open[stream];
    for (let i = 0; i < parts.length; i++) {
      const ended = i < parts.length - 1;
      if (open) {
        open.text += parts[i];
        open.dirty = true;
        if (ended) { open.done = true; this.open[stream] = open = null; }
        continue;
      }
      if (!ended && parts[i] === "") break;
      const n = ++this.count;
      this.texts.push("");
      html += `<div class="l${stream === "stderr" ? " err" : ""}" id="L${n}"><a class="n" href="#L${n}">${n}</a><span class="t"></span></div>`;
      const line = { n, text: parts[i], stream, dirty: true, done: ended };
      this.pendingLines = this.pendingLines || [];
      this.pendingLines.push(line);
      if (!ended) this.open[stream] = open = line;
      if (++this.chunkLines >= CHUNK) this.chunkFull = true;
    }
    return html;
  }

  // Fill in the text of the lines drawn this frame and of the lines still being written.
  refreshOpenLines() {
    const lines = this.pendingLines || [];
    this.pendingLines = [];
    for (const stream of Object.keys(this.open)) {
      const line = this.open[stream];
      if (line && line.dirty && !lines.includes(line)) lines.push(line);
    }
    for (const line of lines) this.fill(line);
    for (const line of lines) if (!line.done) this.pendingLines.push(line);
    this.pendingLines = this.pendingLines.filter((line) => this.open[line.stream] === line);
  }

  fill(line) {
    const node = document.getElementById(`L${line.n}`);
    if (!node) return;
    const ansi = this.ansi[line.stream] || (this.ansi[line.stream] = new AnsiState());
    const state = line.done ? ansi : Object.assign(new AnsiState(), ansi);  // an open line may grow
    node.lastChild.innerHTML = state.html(line.text);
    line.dirty = false;
    this.texts[line.n] = plain(line.text);
    if (this.query && this.texts[line.n].includes(this.query)) this.mark(line.n);
  }

  closeOpenLines() {
    for (const stream of Object.keys(this.open)) {
      const line = this.open[stream];
      if (line) { line.done = true; this.fill(line); }
      this.open[stream] = null;
    }
  }

  lineHtml(text, cls, stream) {
    const n = ++this.count;
    this.texts.push(plain(text));
    const ansi = this.ansi[stream || "note"] || new AnsiState();
    return `<div class="l ${cls}" id="L${n}"><a class="n" href="#L${n}">${n}</a><span class="t">${ansi.html(text)}</span></div>`;
  }

  toHash() {
    if (this.scrolledToHash || !location.hash.startsWith("#L")) return;
    const target = document.getElementById(location.hash.slice(1));
    if (target) { this.scrolledToHash = true; target.scrollIntoView({ block: "center" }); }
  }

  mark(n) {
    const node = document.getElementById(`L${n}`);
    if (node) node.classList.add("hit");
    this.hits.push(n);
  }

  // Mark the lines holding `query`; how many there are.
  search(query) {
    for (const n of this.hits) document.getElementById(`L${n}`)?.classList.remove("hit");
    this.hits = [];
    this.hitIndex = -1;
    this.query = query;
    if (!query) return 0;
    for (let n = 1; n <= this.count; n++) if (this.texts[n].includes(query)) this.mark(n);
    return this.hits.length;
  }

  next() {
    if (!this.hits.length) return;
    this.hitIndex = (this.hitIndex + 1) % this.hits.length;
    const node = document.getElementById(`L${this.hits[this.hitIndex]}`);
    node?.closest("details")?.setAttribute("open", "");
    node?.scrollIntoView({ block: "center" });
  }
}
