// My personal access keys: list, create (the key is shown once), delete.
// Writes send the XSRF-TOKEN cookie back as the X-XSRF-TOKEN header.
"use strict";
const API = "/api/v37/my/personalaccesskey";

function xsrf() {
  const m = document.cookie.split(";").map((c) => c.trim()).find((c) => c.startsWith("XSRF-TOKEN="));
  return m ? m.slice("XSRF-TOKEN=".length) : "";
}

async function call(method, url, body) {
  const headers = { "X-XSRF-TOKEN": xsrf() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    window.location.assign("/account/login");
    throw new Error("signed out");
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const msg = (data && (data.errorMessages || [])[0]) || (data && data.message) || `HTTP ${res.status}`;
    throw new Error(msg);
  }
  return data;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function refresh() {
  const tbody = document.querySelector("#keys tbody");
  const listError = document.getElementById("list-error");
  listError.hidden = true;
  let data;
  try {
    data = await call("GET", API);
  } catch (e) {
    listError.textContent = e.message;
    listError.hidden = false;
    return;
  }
  tbody.replaceChildren();
  for (const k of data.result) {
    const tr = document.createElement("tr");
    tr.dataset.id = k.id;
    tr.append(cell(k.name), cell(k.prefix + "…"), cell(k.validTo ? k.validTo.slice(0, 10) : ""), cell(k.scopes.join(", ")));
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.className = "danger delete";
    del.addEventListener("click", async () => {
      if (!window.confirm(`Delete the key "${k.name}"? It stops working at once.`)) return;
      try {
        await call("DELETE", `${API}/${encodeURIComponent(k.id)}`);
      } catch (e) {
        listError.textContent = e.message;
        listError.hidden = false;
      }
      await refresh();
    });
    const td = document.createElement("td");
    td.append(del);
    tr.append(td);
    tbody.append(tr);
  }
  document.getElementById("empty").hidden = data.result.length > 0;
}

document.getElementById("create").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("create-error");
  err.hidden = true;
  const day = document.getElementById("valid-to").value; // yyyy-mm-dd
  const scopes = [...document.querySelectorAll("input[name=scope]:checked")].map((c) => c.value);
  try {
    const data = await call("POST", API, {
      name: document.getElementById("name").value,
      validTo: day ? `${day}T23:59:59.000Z` : "",
      scopes,
    });
    document.getElementById("new-key").textContent = data.result.key;
    document.getElementById("copied").hidden = true;
    document.getElementById("created").hidden = false;
    ev.target.reset();
    setDefaultDate();
    await refresh();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
});

document.getElementById("copy").addEventListener("click", async () => {
  await navigator.clipboard.writeText(document.getElementById("new-key").textContent);
  document.getElementById("copied").hidden = false;
});

document.getElementById("dismiss").addEventListener("click", () => {
  document.getElementById("new-key").textContent = "";
  document.getElementById("created").hidden = true;
});

document.getElementById("logout").addEventListener("click", async () => {
  try { await call("DELETE", "/v1/sessions"); } catch (_) { /* signed out either way */ }
  window.location.assign("/account/login");
});

function setDefaultDate() {
  const d = new Date(Date.now() + 90 * 86400 * 1000);
  document.getElementById("valid-to").value = d.toISOString().slice(0, 10);
}

setDefaultDate();
refresh();
