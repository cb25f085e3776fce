// The sandbox Slack page: polls /api/state, shows the server-rendered Block Kit, and turns
// clicks and modal submissions into /api/action and /api/view calls (the server builds,
// signs and sends the Slack payloads). Selection lives in the URL hash so reloads keep it.
"use strict";

const $ = (sel) => document.querySelector(sel);
const view = { user: "", channel: "", thread: "", version: "", modalKey: "", shown: "" };
let polling = null;

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  view.user = h.get("user") || view.user;
  view.channel = h.get("channel") || view.channel;
  view.thread = h.get("thread") || "";
}

function writeHash() {
  const h = new URLSearchParams();
  for (const key of ["user", "channel", "thread"]) if (view[key]) h.set(key, view[key]);
  history.replaceState(null, "", "#" + h.toString());
}

function select(changes) {
  Object.assign(view, changes);
  view.version = "";
  writeHash();
  refresh();
}

async function refresh() {
  clearTimeout(polling);
  const q = new URLSearchParams({ since: view.version });
  for (const key of ["user", "channel", "thread"]) if (view[key]) q.set(key, view[key]);
  try {
    const resp = await fetch("/api/state?" + q.toString());
    const state = await resp.json();
    if (!resp.ok) toast(state.error || "HTTP " + resp.status);
    else if (state.changed) render(state);
  } catch (err) {
    toast("The demo is not answering (" + err.message + ")");
  }
  polling = setTimeout(refresh, 1000);
}

function render(state) {
  view.version = state.version;
  view.user = state.user;
  view.channel = state.channel || "";
  view.thread = state.thread || "";
  writeHash();
  $("#team").textContent = state.team;
  const picker = $("#user");
  picker.replaceChildren(
    ...state.people.map((p) => {
      const option = new Option(p.note ? `${p.name} (${p.note})` : p.name, p.id);
      option.selected = p.id === state.user;
      return option;
    })
  );
  $("#channels").replaceChildren(
    ...state.channels.map((c) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "channel-link" + (c.id === state.channel ? " selected" : "");
      button.dataset.channel = c.id;
      button.textContent = c.name;
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = c.count;
      button.append(count);
      li.append(button);
      return li;
    })
  );
  const current = state.channels.find((c) => c.id === state.channel);
  $("#channel-title").textContent = current ? current.name : "No messages yet";

  const main = $("#channel");
  const atBottom = main.scrollHeight - main.scrollTop - main.clientHeight < 40;
  const oldEphemeral = $("#ephemeral").childElementCount;
  $("#messages").innerHTML = state.messages.map((m) => m.html).join("");
  $("#ephemeral").innerHTML = state.ephemeral.join("");
  let parent = null;
  for (const el of document.querySelectorAll("#messages .message")) {
    el.classList.toggle("open", el.dataset.ts === state.thread);
    if (el.dataset.ts === state.thread) parent = el;
  }
  const newThread = `${state.channel}/${state.thread}` !== view.shown;
  view.shown = `${state.channel}/${state.thread}`;
  if (state.ephemeral.length > oldEphemeral) main.scrollTop = main.scrollHeight;
  else if (newThread && parent) parent.scrollIntoView({ block: "center" });
  else if (atBottom) main.scrollTop = main.scrollHeight;

  const pane = $("#thread");
  pane.hidden = !state.thread;
  const threadBox = $("#thread-messages");
  const keep = newThread ? 0 : threadBox.scrollTop;
  threadBox.innerHTML = state.thread_html.join("");
  threadBox.scrollTop = keep;
  renderModal(state.modal);
}

function renderModal(modal) {
  const overlay = $("#overlay");
  const showing = overlay.querySelector(".modal-view");
  if (!modal) {
    if (showing) closeOverlay();
    view.modalKey = "";
    return;
  }
  if (showing && view.modalKey === modal.key) return; // keep what is being typed
  const typed = showing ? collectInputs(showing) : {};
  view.modalKey = modal.key;
  overlay.innerHTML = modal.html;
  overlay.hidden = false;
  for (const input of overlay.querySelectorAll("[data-input]")) {
    const block = input.closest("[data-block-id]").dataset.blockId;
    const previous = (typed[block] || {})[input.dataset.actionId];
    if (previous !== undefined) input.value = previous;
  }
  const first = overlay.querySelector("[data-input]");
  if (first) first.focus();
}

function collectInputs(root) {
  const values = {};
  for (const input of root.querySelectorAll("[data-input]")) {
    const block = input.closest("[data-block-id]").dataset.blockId;
    (values[block] = values[block] || {})[input.dataset.actionId] = input.value;
  }
  return values;
}

function closeOverlay() {
  const overlay = $("#overlay");
  overlay.hidden = true;
  overlay.replaceChildren();
}

async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: view.user, ...body }),
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) toast(answer.error || "HTTP " + resp.status);
  else if (answer.status && answer.status !== 200) toast("The bot answered HTTP " + answer.status);
  else if (answer.error) toast(answer.error);
  return answer;
}

async function click(button) {
  const message = button.closest(".message");
  const block = button.closest("[data-block-index]");
  button.disabled = true;
  try {
    await post("/api/action", {
      channel: view.channel,
      ts: message.dataset.ts,
      ephemeral: message.dataset.ephemeral === "1",
      block_index: Number(block.dataset.blockIndex),
      action_id: button.dataset.actionId,
    });
  } finally {
    button.disabled = false;
    view.version = "";
    refresh();
  }
}

function confirmThen(button, dialog) {
  const overlay = $("#overlay");
  overlay.innerHTML = dialog.innerHTML;
  overlay.hidden = false;
  overlay.querySelector(".deny").onclick = closeOverlay;
  overlay.querySelector(".accept").onclick = () => {
    closeOverlay();
    click(button);
  };
}

async function submitModal(dialog) {
  const answer = await post("/api/view", {
    view_id: dialog.dataset.viewId,
    values: collectInputs(dialog),
  });
  view.version = "";
  refresh();
  return answer;
}

function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 6000);
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  if (target.dataset.channel) select({ channel: target.dataset.channel, thread: "" });
  else if (target.classList.contains("replies")) select({ thread: target.dataset.thread });
  else if (target.classList.contains("close-thread")) select({ thread: "" });
  else if (target.closest(".modal-view")) {
    const dialog = target.closest(".modal-view");
    if (target.classList.contains("submit")) submitModal(dialog);
    else if (target.classList.contains("close")) {
      closeOverlay();
      post("/api/view_closed", { view_id: dialog.dataset.viewId }).then(refresh);
    }
  } else if (target.dataset.actionId) {
    const dialog = target.nextElementSibling;
    if (dialog && dialog.classList.contains("confirm")) confirmThen(target, dialog);
    else click(target);
  }
});

$("#user").addEventListener("change", (event) => select({ user: event.target.value }));
window.addEventListener("hashchange", () => {
  readHash();
  view.version = "";
  refresh();
});

readHash();
refresh();
