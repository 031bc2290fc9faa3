// The adjudication page: one waiting item at a time, every answer beside the model's suggestion;
// number keys pick the label (on multi-label projects: tick or untick it), n writes a note,
// Enter decides, Backspace undoes the last decision.
// Item texts, labels, names and notes are untrusted: they reach the page as text nodes only.
"use strict";
(() => {
  const { showText, api, detail, say, labelButton, labelCheckbox } = window.labelloop; // page.js
  const $ = (id) => document.getElementById(id);
  let labels = [];
  let multi = false; // a multi-label project: checkboxes, and decisions are sets
  let current = null; // the item on screen
  let picked = null; // index of the chosen label
  let later = []; // items put off with Space in this visit
  let busy = false;
  let decided = 0;

  function listItem(parts) {
    const li = document.createElement("li");
    parts.forEach(([cls, text]) => {
      const span = document.createElement("span");
      span.className = cls;
      span.dir = "auto";
      showText(span, text);
      li.append(span, " ");
    });
    return li;
  }

  function renderChoices() {
    const box = $("choices");
    box.replaceChildren();
    labels.forEach((label, index) => {
      const button = multi ? labelCheckbox(label, index) : labelButton(label, index);
      if (!multi) button.addEventListener("click", () => pick(index));
      box.append(button);
    });
  }

  // A set as the page shows it: the labels, or "no label" for the empty set.
  function setText(set) {
    return set.length ? set.join(", ") : "no label";
  }

  // Multi-label items: the item's set now (else the suggested set) pre-ticked, each label's
  // probability beside it.
  function renderSet(item) {
    const suggested = item.suggested_set;
    const start = new Set(item.labels !== null ? item.labels : suggested ? suggested.labels : []);
    const probs = suggested ? suggested.probs : {};
    document.querySelectorAll(".choice").forEach((row) => {
      const label = labels[Number(row.dataset.index)];
      const p = Object.prototype.hasOwnProperty.call(probs, label) ? probs[label] : null;
      row.querySelector("input").checked = start.has(label);
      row.querySelector(".label-prob").textContent =
        typeof p === "number" ? `${(100 * p).toFixed(0)}%` : "";
    });
    if (suggested) showText($("sugg-label"), setText(suggested.labels));
  }

  function tickedLabels() {
    return labels.filter((_, index) =>
      document.querySelector(`.choice[data-index="${index}"] input`).checked);
  }

  function pick(index) {
    if (!current || index >= labels.length) return;
    if (multi) {
      const box = document.querySelector(`.choice[data-index="${index}"] input`);
      box.checked = !box.checked;
      return;
    }
    picked = index;
    document.querySelectorAll(".choice").forEach((button) => {
      const chosen = Number(button.dataset.index) === picked;
      button.classList.toggle("chosen", chosen);
      button.setAttribute("aria-pressed", String(chosen));
    });
    $("btn-decide").disabled = false;
  }

  // The item's label now, where it came from, and the team's posterior when it is weighted.
  function standing(item) {
    const given = multi ? (item.labels === null ? null : setText(item.labels)) : item.label;
    const now = given === null ? "no label yet" : `${given} (${item.label_source})`;
    const posterior = item.label_posterior ? Object.entries(item.label_posterior)
      .sort((a, b) => b[1] - a[1])
      .map(([label, p]) => `${label} ${(100 * p).toFixed(0)}%`)
      .join(", ") : "";
    return `Label now: ${now}${posterior ? ` · team posterior: ${posterior}` : ""}`;
  }

  function render() {
    const empty = current === null;
    $("case").hidden = empty;
    $("empty").hidden = !empty;
    picked = null;
    $("btn-decide").disabled = !multi;
    $("note").value = "";
    if (empty) return;
    showText($("text"), current.text);
    showText($("uid"), current.uid);
    $("reasons").textContent = current.reasons.join(", ");
    $("truncated").hidden = !current.truncated;
    const suggestion = current.suggestion;
    $("suggestion").hidden = !suggestion;
    $("no-suggestion").hidden = Boolean(suggestion);
    if (suggestion) {
      showText($("sugg-label"), suggestion.label);
      const confidence = suggestion.confidence;
      $("sugg-meter").value = confidence === null ? 0 : confidence;
      $("sugg-conf").textContent = confidence === null ? "no confidence" :
        `${(100 * confidence).toFixed(0)}%${suggestion.calibrated ? " calibrated" : " (not calibrated)"}`;
      showText($("sugg-reason"), suggestion.reasoning || "");
    }
    showText($("standing"), standing(current));
    $("answers").replaceChildren(...current.answers.map((a) => {
      const given = multi ? (a.labels === null ? null : setText(a.labels)) : a.label;
      return listItem([
        ["annotator", a.annotator + ":"],
        ["answer", given === null ? a.action : `${given} (${a.action})`],
      ]);
    }));
    $("flags").replaceChildren(...current.flags.map((f) => listItem([
      ["annotator", f.annotator + " flagged:"],
      ["reason", f.reason || "(no reason given)"],
    ])));
    if (multi) {
      renderSet(current);
      return;
    }
    document.querySelectorAll(".choice").forEach((button) => {
      button.classList.remove("chosen");
      button.setAttribute("aria-pressed", "false");
    });
  }

  async function load() {
    const query = new URLSearchParams();
    later.forEach((id) => query.append("exclude", id));
    const [response, queue] = await Promise.all([
      api("GET", "/api/v1/adjudication/next?" + query.toString()),
      api("GET", "/api/v1/adjudication?limit=1"),
    ]);
    if (queue.ok) $("waiting").textContent = `${(await queue.json()).count} waiting`;
    if (response.status === 204) current = null;
    else if (response.ok) current = await response.json();
    else throw new Error(await detail(response));
    render();
  }

  async function decide() {
    if (!current || (!multi && picked === null) || busy) return;
    busy = true;
    try {
      const note = $("note").value.trim();
      const body = multi ? { labels: tickedLabels() } : { label: labels[picked] };
      if (note) body.note = note;
      const response = await api("POST", `/api/v1/adjudication/items/${current.id}/decision`, body);
      if (response.status !== 201) {
        say(await detail(response), true);
        return;
      }
      const saved = await response.json();
      decided += 1;
      $("done-count").textContent = String(decided);
      say(`Decided: ${multi ? setText(saved.labels) : saved.label}.`);
      $("note").blur();
      await load();
    } catch (error) {
      say(error.message, true);
    } finally {
      busy = false;
    }
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const response = await api("POST", "/api/v1/adjudication/undo", {});
      if (!response.ok) {
        say(await detail(response), true);
        return;
      }
      current = (await response.json()).item;
      later = later.filter((id) => id !== current.id);
      decided = Math.max(0, decided - 1);
      $("done-count").textContent = String(decided);
      render();
      say("Decision withdrawn.");
    } catch (error) {
      say(error.message, true);
    } finally {
      busy = false;
    }
  }

  function putOff() {
    if (!current) return;
    later.push(current.id);
    load().catch((error) => say(error.message, true));
  }

  function toggleGuidelines() {
    $("guidelines").hidden = !$("guidelines").hidden;
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    const target = event.target;
    if (target && target.id === "note") {
      // In the note: Enter decides, Shift+Enter is a new line, Escape leaves the note.
      if (key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        decide();
      } else if (key === "Escape") target.blur();
      return;
    }
    if (target && (target.isContentEditable ||
      (/^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) && target.type !== "checkbox"))) return;
    let handled = true;
    if (/^[1-9]$/.test(key)) pick(Number(key) - 1);
    else if (key === "Enter") decide();
    else if (key === "n") {
      if (current) $("note").focus();
    } else if (key === " ") putOff();
    else if (key === "Backspace") undo();
    else if (key === "g") toggleGuidelines();
    else handled = false;
    if (handled) event.preventDefault();
  }

  async function start() {
    const response = await api("GET", "/api/v1/project");
    const project = await response.json();
    labels = project.labels;
    multi = Boolean(project.multi_label);
    renderChoices();
    await load();
  }

  $("btn-decide").addEventListener("click", decide);
  $("btn-skip").addEventListener("click", putOff);
  $("btn-undo").addEventListener("click", undo);
  $("btn-undo-empty").addEventListener("click", undo);
  $("btn-refresh").addEventListener("click", () => {
    later = [];
    load().catch((error) => say(error.message, true));
  });
  document.addEventListener("keydown", onKey);
  start().catch((error) => say(error.message, true));
})();
