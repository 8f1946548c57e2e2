// alignstack label: keyboard + pointer interaction for the pairwise and ranking pages.
// Never writes user text with innerHTML: the server renders (and escapes) every response;
// this script only reorders existing nodes and sets textContent on status lines.
"use strict";
(function () {
  const app = document.getElementById("app");
  if (!app) return;
  const kind = app.dataset.kind;
  const project = app.dataset.project;
  const csrf = app.dataset.csrf;
  const taskId = app.dataset.task ? parseInt(app.dataset.task, 10) : null;
  const k = parseInt(app.dataset.k, 10);
  const statusEl = document.getElementById("status");
  const shownAt = Date.now();
  let busy = false;

  // One idempotency key per task view: every retry of this submission reuses it, so the server
  // can recognise a repeat and answer with the original acknowledgement instead of a duplicate.
  function uuid4() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  const idempotencyKey = uuid4();
  app.dataset.idempotencyKey = idempotencyKey;

  function say(text, isError) {
    if (!statusEl) return;
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    return { status: resp.status, data };
  }

  const base = "/api/projects/" + encodeURIComponent(project);

  async function submitLabel(payload) {
    if (busy || taskId === null) return;
    busy = true;
    say("Saving…");
    payload.task_id = taskId;
    payload.idempotency_key = idempotencyKey;
    payload.duration_ms = Date.now() - shownAt;
    try {
      const r = await post("/api/label", payload);
      if (r.status === 200 && r.data.ok) {
        say("Saved.");
        app.dataset.labelId = String(r.data.label_id);
        window.location.reload();
        return;
      }
      say(`Not saved: ${r.data.error || "HTTP " + r.status}` +
          (r.status === 409 ? " Reload the page for your next task." : ""), true);
    } catch (e) {
      say("Network error: not saved. Press Enter to retry (it will not be counted twice).", true);
    }
    busy = false;
  }

  async function action(name) {
    if (busy) return;
    busy = true;
    try {
      const r = await post(`${base}/${name}`, { task_id: taskId });
      if (r.status === 200 && r.data.ok) { window.location.reload(); return; }
      say(r.data.error || `HTTP ${r.status}`, true);
    } catch (e) {
      say("Network error.", true);
    }
    busy = false;
  }

  const undoBtn = document.getElementById("undo");
  if (undoBtn) undoBtn.addEventListener("click", () => action("undo"));
  const skipBtn = document.getElementById("skip");
  if (skipBtn) skipBtn.addEventListener("click", () => action("skip"));

  function safeFlags() {
    const flags = new Array(k).fill(true);
    document.querySelectorAll("input.unsafe").forEach((el) => {
      flags[parseInt(el.dataset.index, 10)] = !el.checked;
    });
    return flags;
  }

  function toggleUnsafe(index) {
    const el = document.getElementById(`unsafe-${index}`);
    if (el) el.checked = !el.checked;
  }

  // ---- pairwise -----------------------------------------------------------------------
  let choice = null;
  let strength = null;
  const submitBtn = document.getElementById("submit");

  function refreshPairwise() {
    document.querySelectorAll(".choice").forEach((b) =>
      b.classList.toggle("selected", parseInt(b.dataset.choice, 10) === choice));
    document.querySelectorAll(".strength").forEach((b) =>
      b.classList.toggle("selected", b.dataset.strength === strength));
    document.querySelectorAll(".response").forEach((r) =>
      r.classList.toggle("picked", parseInt(r.dataset.index, 10) === choice));
    if (submitBtn) submitBtn.disabled = choice === null || strength === null;
  }

  function submitPairwise() {
    if (choice === null || strength === null) {
      say("Pick the better response (1/2) and how much better (a/s/d/f) first.", true);
      return;
    }
    submitLabel({ choice, strength, safe: safeFlags() });
  }

  const STRENGTH_KEYS = { a: "significantly_better", s: "better", d: "slightly_better", f: "negligibly_better" };

  if (kind === "pairwise" && taskId !== null) {
    document.querySelectorAll(".choice").forEach((b) => b.addEventListener("click", () => {
      choice = parseInt(b.dataset.choice, 10); refreshPairwise();
    }));
    document.querySelectorAll(".strength").forEach((b) => b.addEventListener("click", () => {
      strength = b.dataset.strength; refreshPairwise();
    }));
    submitBtn.addEventListener("click", submitPairwise);
  }

  // ---- ranking ------------------------------------------------------------------------
  const list = document.getElementById("ranklist");
  let focused = 0; // position (not response index) of the selected item

  function items() { return Array.from(list.querySelectorAll(".rankitem")); }

  function renumber() {
    items().forEach((li, pos) => {
      li.querySelector(".pos").textContent = String(pos + 1);
      li.classList.toggle("focused", pos === focused);
    });
  }

  function moveItem(from, to) {
    const all = items();
    to = Math.max(0, Math.min(all.length - 1, to));
    if (from === to) return;
    const node = all[from];
    list.removeChild(node);
    const rest = items();
    if (to >= rest.length) list.appendChild(node); else list.insertBefore(node, rest[to]);
    focused = to;
    renumber();
  }

  function currentRanking() { return items().map((li) => parseInt(li.dataset.index, 10)); }
  app.currentRanking = currentRanking;

  if (kind === "ranking" && taskId !== null) {
    items().forEach((li) => li.addEventListener("click", (ev) => {
      if (ev.target.closest("input,label")) return;
      focused = items().indexOf(li); renumber();
    }));
    document.getElementById("submit").addEventListener("click", () =>
      submitLabel({ ranking: currentRanking(), safe: safeFlags() }));

    // Drag and drop with pointer events (works with mouse, touch and pen, and with WebDriver).
    let dragged = null;
    list.addEventListener("pointerdown", (ev) => {
      const li = ev.target.closest(".rankitem");
      if (!li || ev.target.closest("input,label") || ev.button !== 0) return;
      dragged = li;
      li.classList.add("dragging");
      focused = items().indexOf(li);
      renumber();
      ev.preventDefault();
    });
    document.addEventListener("pointermove", (ev) => {
      if (!dragged) return;
      const over = document.elementFromPoint(ev.clientX, ev.clientY);
      const target = over && over.closest(".rankitem");
      if (!target || target === dragged || target.parentNode !== list) return;
      const rect = target.getBoundingClientRect();
      const after = ev.clientY > rect.top + rect.height / 2;
      list.insertBefore(dragged, after ? target.nextSibling : target);
      focused = items().indexOf(dragged);
      renumber();
    });
    const endDrag = () => {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged = null;
    };
    document.addEventListener("pointerup", endDrag);
    document.addEventListener("pointercancel", endDrag);
  }

  // ---- keyboard -----------------------------------------------------------------------
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" && ev.target.type !== "checkbox") return;
    if (tag === "textarea" || tag === "select") return;
    const key = ev.key;
    if (key === "u") { ev.preventDefault(); action("undo"); return; }
    if (taskId === null) return;
    if (key === "n") { ev.preventDefault(); action("skip"); return; }
    if (kind === "pairwise") {
      if (key === "1" || key === "2") { choice = parseInt(key, 10) - 1; refreshPairwise(); }
      else if (STRENGTH_KEYS[key]) { strength = STRENGTH_KEYS[key]; refreshPairwise(); }
      else if (key === "z") toggleUnsafe(0);
      else if (key === "x") toggleUnsafe(1);
      else if (key === "Enter") submitPairwise();
      else return;
      ev.preventDefault();
      return;
    }
    const n = items().length;
    if (key === "ArrowUp" && ev.shiftKey || key === "K") moveItem(focused, focused - 1);
    else if (key === "ArrowDown" && ev.shiftKey || key === "J") moveItem(focused, focused + 1);
    else if (key === "ArrowUp" || key === "k") { focused = Math.max(0, focused - 1); renumber(); }
    else if (key === "ArrowDown" || key === "j") { focused = Math.min(n - 1, focused + 1); renumber(); }
    else if (/^[1-9]$/.test(key) && parseInt(key, 10) <= n) moveItem(focused, parseInt(key, 10) - 1);
    else if (key === "x") toggleUnsafe(parseInt(items()[focused].dataset.index, 10));
    else if (key === "Enter") submitLabel({ ranking: currentRanking(), safe: safeFlags() });
    else return;
    ev.preventDefault();
    const el = items()[focused];
    if (el && el.scrollIntoView) el.scrollIntoView({ block: "nearest" });
  });
})();
