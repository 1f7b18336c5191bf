// Sign in: POST /v1/sessions sets the session cookie and the XSRF-TOKEN cookie.
"use strict";
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("error");
  error.hidden = true;
  const res = await fetch("/v1/sessions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    }),
  });
  if (res.status === 201) {
    window.location.assign("/account/keys");
    return;
  }
  const body = await res.json().catch(() => ({}));
  error.textContent = res.status === 429
    ? "Too many failed attempts. Try again later."
    : (body.message || "Sign-in failed.");
  error.hidden = false;
});
