// A sandbox's terminal in the page: xterm.js over the daemon's terminal WebSocket.
//
// The socket carries raw bytes (the attach add-on writes what comes to the screen); a resize
// goes beside it over HTTP. With a pty in the sandbox ("pty" mode) keys go out as typed and
// the shell edits its own line; without one ("pipe" mode: the command's stdin is a pipe)
// LineEditor echoes and edits the line here and sends it whole, and Ctrl-C is a request.
// A dropped connection is made again (1, 2, 4 ... 10 s apart) and the screen drawn anew
// from what the daemon replays; the shell in the sandbox never noticed.
import { Terminal } from "/console/vendor/xterm/lib/xterm.mjs";
import { FitAddon } from "/console/vendor/addon-fit/lib/addon-fit.mjs";
import { AttachAddon } from "/console/vendor/addon-attach/lib/addon-attach.mjs";
import { api, wsUrl } from "./common.js";

export const CLOSE_ENDED = 4000;
export const CLOSE_RESET = 4001;

class LineEditor {
  constructor(term, send, interrupt) {
    this.term = term;
    this.send = send;
    this.interrupt = interrupt;
    this.line = "";
    this.history = [];
    this.lastWasCR = false;
  }

  data(data) {
    if (data.startsWith("\x1b")) return this.escape(data);
    for (const ch of data) {
      const afterCR = this.lastWasCR;
      this.lastWasCR = ch === "\r";
      if (ch === "\n" && afterCR) continue;
      if (ch === "\r" || ch === "\n") this.enter();
      else if (ch === "\x7f" || ch === "\b") this.erase(1);
      else if (ch === "\x15") this.erase(this.line.length);
      else if (ch === "\x03") { this.term.write("^C\r\n"); this.line = ""; this.interrupt(); }
      else if (ch >= " " || ch === "\t") { this.line += ch; this.term.write(ch); }
    }
  }

  enter() {
    this.term.write("\r\n");
    this.send(this.line + "\n");
    if (this.line.trim()) this.history.push(this.line);
    this.historyAt = this.history.length;
    this.line = "";
  }

  erase(n) {
    n = Math.min(n, this.line.length);
    if (!n) return;
    this.line = this.line.slice(0, -n);
    this.term.write("\b \b".repeat(n));
  }

  escape(seq) {  // up and down walk the history; the rest is not ours to edit without a pty
    if (seq !== "\x1b[A" && seq !== "\x1b[B") return;
    const at = (this.historyAt ?? this.history.length) + (seq === "\x1b[A" ? -1 : 1);
    if (at < 0 || at > this.history.length) return;
    this.historyAt = at;
    this.erase(this.line.length);
    this.line = this.history[at] || "";
    this.term.write(this.line);
  }
}

export class TermSession {
  // paths: socket (WebSocket), resize and interrupt (POST); mode "pty" or "pipe"; write: may type.
  constructor(box, { socket, resize, interrupt, mode = "pipe", write = true, onStatus = () => {}, onEnd = () => {} }) {
    Object.assign(this, { box, socketPath: socket, resizePath: resize, interruptPath: interrupt, mode, write, onStatus, onEnd });
    this.retry = 1000;
    this.closed = false;
    this.term = new Terminal({ convertEol: mode === "pipe", cursorBlink: write, fontSize: 14, scrollback: 5000,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace', theme: { background: "#000000" } });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(box);
    this.term.attachCustomKeyEventHandler((event) => this.clipboard(event));
    if (write && mode === "pipe") {
      this.editor = new LineEditor(this.term, (line) => this.ws?.readyState === WebSocket.OPEN && this.ws.send(line), () => this.ctrlC());
      this.term.onData((data) => this.editor.data(data));
    }
    if (write) this.term.onResize(({ rows, cols }) => this.sendSize(rows, cols));
    this.observer = new ResizeObserver(() => this.fitNow());
    this.observer.observe(box);
    this.fitNow();
    this.connect();
  }

  fitNow() {
    try { this.fit.fit(); } catch (e) { /* not laid out yet */ }
  }

  sendSize(rows, cols) {
    clearTimeout(this.sizeTimer);
    this.sizeTimer = setTimeout(() => api(`${this.resizePath}?rows=${rows}&cols=${cols}`, { method: "POST" }).catch(() => {}), 150);
  }

  ctrlC() {
    api(this.interruptPath, { method: "POST" }).catch(() => {});
  }

  // Ctrl+Shift+C copies the selection, Ctrl+Shift+V pastes (plain Ctrl+C stays the terminal's).
  // The paste is the browser's own (its paste event reaches xterm.js, which types the text):
  // nothing here reads the clipboard, which would paste it twice and ask for a permission.
  clipboard(event) {
    if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
    if (event.code === "KeyC" && this.term.hasSelection()) {
      navigator.clipboard?.writeText(this.term.getSelection());
      return false;
    }
    return event.code !== "KeyV";  // not a ^V to the shell; the browser pastes
  }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(wsUrl(this.socketPath));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.retry = 1000;
      this.term.reset();
      this.attach = new AttachAddon(ws, { bidirectional: this.write && this.mode === "pty" });
      this.term.loadAddon(this.attach);
      this.onStatus("connected", "");
      if (this.write) this.sendSize(this.term.rows, this.term.cols);
      this.term.focus();
    });
    ws.addEventListener("close", (event) => this.dropped(event));
  }

  dropped(event) {
    if (event.target !== this.ws) return;  // a socket this session already let go
    this.attach?.dispose();
    this.attach = null;
    if (this.closed) return;
    if (event.code === CLOSE_RESET) { this.onStatus("reset", event.reason); this.connect(); return; }
    if (event.code === CLOSE_ENDED) { this.onStatus("ended", event.reason); this.onEnd(event.reason); return; }
    if (event.code === 1008) { this.onStatus("refused", event.reason || "refused"); return; }
    this.onStatus("reconnecting", `connection lost; trying again in ${this.retry / 1000}s`);
    setTimeout(() => this.connect(), this.retry);
    this.retry = Math.min(this.retry * 2, 10000);
  }

  // Make the connection again now (after a restart of the sandbox).
  reconnect() {
    const old = this.ws;
    this.ws = null;
    old?.close();
    this.closed = false;
    this.connect();
  }

  dispose() {
    this.closed = true;
    this.observer.disconnect();
    const old = this.ws;
    this.ws = null;
    old?.close();
    this.term.dispose();
  }
}
