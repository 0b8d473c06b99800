// deepmedix review admin page: progress per annotator, reopen a finished review.
"use strict";

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401 || response.status === 403) {
    document.getElementById("signin").hidden = false;
    throw new Error("admin sign-in needed");
  }
  if (!response.ok) throw new Error(`${response.status}`);
  return response.json();
}

async function refresh() {
  const data = await api("/api/admin/progress");
  const tbody = document.querySelector("#progress-table tbody");
  tbody.replaceChildren();
  let done = 0;
  let total = 0;
  for (const a of data.annotators) {
    done += a.complete;
    total += a.assigned;
    const tr = document.createElement("tr");
    for (const v of [a.annotator, a.group, a.complete, a.assigned, a.ratings, a.last_rating_at || "—", a.finished_at || "—"]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    if (a.finished_at) {
      const b = document.createElement("button");
      b.textContent = "Reopen";
      b.addEventListener("click", async () => {
        await api(`/api/admin/reopen/${encodeURIComponent(a.annotator)}`, { method: "POST" });
        refresh();
      });
      td.appendChild(b);
    }
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
  document.getElementById("summary").textContent =
    `${data.samples} samples · ${data.annotators.length} annotators · ${done} / ${total} assigned samples complete`;
}

document.getElementById("refresh").addEventListener("click", refresh);
refresh().catch((err) => { document.getElementById("admin-status").textContent = err.message; });
