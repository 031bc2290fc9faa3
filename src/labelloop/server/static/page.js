// What the review and adjudication pages share: calling the API with the session's CSRF token,
// error details, the status message, label buttons and label checkboxes. Untrusted text (item texts, labels,
// names, notes) reaches the pages only through showText: text nodes, never parsed as HTML.
"use strict";
(() => {
  // Bidirectional controls (embeddings, overrides, isolates, marks) let a text reorder what the
  // reader sees relative to what is stored: each is shown as a marker instead of applied.
  const BIDI_CONTROL = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function showText(element, text) {
    element.replaceChildren();
    let start = 0;
    for (const match of text.matchAll(BIDI_CONTROL)) {
      const code = match[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      const marker = document.createElement("span");
      marker.className = "bidi-control";
      marker.title = "A bidirectional control character in the text, shown, not applied.";
      marker.textContent = `⟨U+${code}⟩`;
      element.append(text.slice(start, match.index), marker);
      start = match.index + match[0].length;
    }
    element.append(text.slice(start));
  }

  // A JSON call of the API; a lapsed session goes to the login page, and back here after it.
  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
      throw new Error("logged out");
    }
    return response;
  }

  async function detail(response) {
    try {
      const body = await response.json();
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) {
      return response.statusText;
    }
  }

  function say(text, isError) {
    const message = document.getElementById("message");
    showText(message, text || "");
    message.classList.toggle("error", Boolean(isError));
  }

  // A label's button: its number key (1-9) and its name, as text.
  function labelButton(label, index) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "choice";
    button.dataset.index = String(index);
    button.append(...keyAndName(label, index));
    return button;
  }

  // What a label's button or checkbox shows: its number key (the first nine) and its name.
  function keyAndName(label, index) {
    const parts = [];
    if (index < 9) {
      const key = document.createElement("kbd");
      key.textContent = String(index + 1);
      parts.push(key, " ");
    }
    const name = document.createElement("span");
    name.className = "label-name";
    name.dir = "auto";
    showText(name, label);
    parts.push(name);
    return parts;
  }

  // A label's checkbox on multi-label items: its number key, its name as text, and a place for
  // its probability; the whole row toggles the box.
  function labelCheckbox(label, index) {
    const row = document.createElement("label");
    row.className = "choice check";
    row.dataset.index = String(index);
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "label-check";
    const prob = document.createElement("span");
    prob.className = "label-prob";
    row.append(box, " ", ...keyAndName(label, index), " ", prob);
    return row;
  }

  window.labelloop = Object.freeze({ showText, api, detail, say, labelButton, labelCheckbox });
})();
