// Sign in: a token (from `sandbox daemon token create`) becomes this browser's session.
import { el, main } from "./common.js";

const root = main("Sign in to the sandbox daemon");
const next = new URLSearchParams(location.search).get("next") || "/console/";
const input = el("input", { type: "password", id: "token", size: 60, autocomplete: "off", placeholder: "sbx_…" });
const message = el("p", { class: "error", id: "login-error" });

export async function signIn(token) {
  const response = await fetch("/console/session", {
    method: "POST", credentials: "same-origin", headers: { Authorization: `Bearer ${token.trim()}` },
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.message || response.statusText);
  }
  return response.json();
}

async function submit(event) {
  event.preventDefault();
  try {
    await signIn(input.value);
    location.assign(next.startsWith("/") ? next : "/console/");
  } catch (error) {
    message.textContent = error.message;
  }
}

root.append(
  el("form", { class: "stacked", onsubmit: submit },
    el("label", { for: "token" }, "Token"), input, " ", el("button", { type: "submit" }, "Sign in"),
    el("p", { class: "muted" }, "Make one on the daemon's host: ", el("code", {}, "sandbox daemon token create --name me --scope admin"),
      ". It is kept in an HttpOnly cookie of this browser until you sign out.")),
  message);
if (location.hash.length > 1) {  // /console/login#TOKEN signs in at once
  input.value = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname + location.search);
  submit(new Event("submit"));
}
