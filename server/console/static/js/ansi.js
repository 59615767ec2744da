// ANSI colours and styles (SGR) in a log line, as HTML; every other escape sequence dropped.
// The state carries from line to line, as on a terminal.

const BASIC = ["#484f58", "#ff7b72", "#3fb950", "#d29922", "#58a6ff", "#bc8cff", "#39c5cf", "#b1bac4"];
const BRIGHT = ["#6e7681", "#ffa198", "#56d364", "#e3b341", "#79c0ff", "#d2a8ff", "#56d4dd", "#ffffff"];
// CSI ... final byte, OSC ... BEL/ST, and two-byte escapes
const ESCAPES = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78DEHMNOZc]/g;

export function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function color256(n) {
  if (n < 8) return BASIC[n];
  if (n < 16) return BRIGHT[n - 8];
  if (n < 232) {
    const i = n - 16, steps = [0, 95, 135, 175, 215, 255];
    return `rgb(${steps[Math.floor(i / 36)]},${steps[Math.floor(i / 6) % 6]},${steps[i % 6]})`;
  }
  const gray = 8 + (n - 232) * 10;
  return `rgb(${gray},${gray},${gray})`;
}

export class AnsiState {
  constructor() { this.reset(); }

  reset() { this.fg = null; this.bg = null; this.bold = false; this.dim = false; this.italic = false; this.underline = false; }

  apply(params) {
    const codes = params === "" ? [0] : params.split(/[;:]/).map((x) => Number(x) || 0);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) this.reset();
      else if (c === 1) this.bold = true;
      else if (c === 2) this.dim = true;
      else if (c === 3) this.italic = true;
      else if (c === 4) this.underline = true;
      else if (c === 22) { this.bold = false; this.dim = false; }
      else if (c === 23) this.italic = false;
      else if (c === 24) this.underline = false;
      else if (c >= 30 && c <= 37) this.fg = BASIC[c - 30];
      else if (c >= 90 && c <= 97) this.fg = BRIGHT[c - 90];
      else if (c >= 40 && c <= 47) this.bg = BASIC[c - 40];
      else if (c >= 100 && c <= 107) this.bg = BRIGHT[c - 100];
      else if (c === 39) this.fg = null;
      else if (c === 49) this.bg = null;
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
        this[c === 38 ? "fg" : "bg"] = color256(codes[i + 2] || 0); i += 2;
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
        this[c === 38 ? "fg" : "bg"] = `rgb(${codes[i + 2] || 0},${codes[i + 3] || 0},${codes[i + 4] || 0})`; i += 4;
      }
    }
  }

  open() {
    const classes = [], styles = [];
    if (this.bold) classes.push("ansi-bold");
    if (this.dim) classes.push("ansi-dim");
    if (this.italic) classes.push("ansi-italic");
    if (this.underline) classes.push("ansi-underline");
    if (this.fg) styles.push(`color:${this.fg}`);
    if (this.bg) styles.push(`background:${this.bg}`);
    if (!classes.length && !styles.length) return "";
    return `<span${classes.length ? ` class="${classes.join(" ")}"` : ""}${styles.length ? ` style="${styles.join(";")}"` : ""}>`;
  }

  // One line (no newline in it) as HTML; a carriage return starts the line over, as a
  // progress bar means it.
  html(line) {
    const cr = line.lastIndexOf("\r", line.length - 1);
    if (cr >= 0 && cr < line.length - 1) line = line.slice(cr + 1);
    else if (cr === line.length - 1) line = line.slice(0, -1);
    let out = this.open(), spanOpen = out !== "", last = 0, match;
    ESCAPES.lastIndex = 0;
    while ((match = ESCAPES.exec(line)) !== null) {
      out += escapeHtml(line.slice(last, match.index));
      last = ESCAPES.lastIndex;
      if (match[2] !== "m") continue;
      if (spanOpen) out += "</span>";
      this.apply(match[1]);
      const open = this.open();
      out += open;
      spanOpen = open !== "";
    }
    out += escapeHtml(line.slice(last));
    return spanOpen ? out + "</span>" : out;
  }
}

// The text of a line without its escape sequences (for search).
export function plain(line) {
  return line.replace(ESCAPES, "");
}
