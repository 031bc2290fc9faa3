// The review page: one item at a time, keyboard first, next item prefetched.
// Item data is untrusted: it only ever reaches the page as text nodes (see showText).
"use strict";
(() => {
  const { showText, api, detail, say, labelButton, labelCheckbox } = window.labelloop; // page.js
  const $ = (id) => document.getElementById(id);
  let labels = [];
  let multi = false; // a multi-label project: checkboxes, and answers are sets
  let descriptions = {}; // label -> what it means (plain text, untrusted like item text)
  let current = null; // the item on screen
  let buffer = []; // prefetched items
  let pending = null; // the in-flight prefetch
  let shownAt = 0;
  let busy = false;
  let answered = 0;
  let drained = false; // an answer's reply said nothing is left: no fetch until a refresh
  const flagged = new Set(); // ids of the items flagged from this page (f again takes it back)

  function heldIds() {
    return [current, ...buffer].filter(Boolean).map((item) => item.id);
  }

  async function fetchNext() {
    const query = new URLSearchParams();
    heldIds().forEach((id) => query.append("exclude", id));
    const response = await api("GET", "/api/v1/queue/next?" + query.toString());
    if (response.status === 204) return null;
    if (!response.ok) throw new Error(await detail(response));
    return response.json();
  }

  // One prefetch at a time; its result lands in the buffer (never twice the same item).
  function prefetch() {
    if (pending || buffer.length > 0) return pending || Promise.resolve();
    pending = fetchNext()
      .then((item) => {
        if (item && !heldIds().includes(item.id)) buffer.push(item);
      })
      .catch((error) => say(error.message, true))
      .finally(() => {
        pending = null;
      });
    return pending;
  }

  function renderChoices() {
    const box = $("choices");
    box.replaceChildren();
    labels.forEach((label, index) => {
      const button = multi ? labelCheckbox(label, index) : labelButton(label, index);
      const meaning = describe(label);
      if (meaning) {
        button.title = meaning; // an attribute set from script: text, never parsed as HTML
        const note = document.createElement("span");
        note.className = "label-desc";
        note.dir = "auto";
        showText(note, meaning);
        button.append(note);
      }
      if (!multi) button.addEventListener("click", () => pick(index));
      box.append(button);
    });
  }

  // After a gold check (when the project shows them): the expected label and what it means.
  function showGoldFeedback(feedback) {
    const verdict = feedback.correct ? "Gold check passed" : "Gold check missed";
    if (Array.isArray(feedback.expected_labels)) {
      showGoldSetFeedback(verdict, feedback);
      return;
    }
    const yours = feedback.your_label === null ? "no label" : feedback.your_label;
    const meaning = feedback.description ? ` — ${feedback.expected_label}: ${feedback.description}` : "";
    say(`${verdict}: expected ${feedback.expected_label}, you gave ${yours}${meaning}`, !feedback.correct);
  }

  // A multi-label gold check: the sets, what was missed or added, and those labels' meaning.
  function showGoldSetFeedback(verdict, feedback) {
    const named = (set) => (set && set.length ? set.join(", ") : "no label");
    const parts = [`${verdict}: expected ${named(feedback.expected_labels)}, you gave ${named(feedback.your_labels)}`];
    if (feedback.missing.length) parts.push(`missed ${feedback.missing.join(", ")}`);
    if (feedback.extra.length) parts.push(`added ${feedback.extra.join(", ")}`);
    const meanings = Object.entries(feedback.descriptions || {}).map(([label, text]) => `${label}: ${text}`);
    say(parts.join("; ") + (meanings.length ? ` — ${meanings.join("; ")}` : ""), !feedback.correct);
  }

  function describe(label) {
    return Object.prototype.hasOwnProperty.call(descriptions, label) ? descriptions[label] : "";
  }

  // The guidelines panel's label list: every label, with its description when it has one.
  function renderDescriptions() {
    const list = $("label-descriptions");
    list.replaceChildren();
    labels.forEach((label) => {
      const term = document.createElement("dt");
      showText(term, label);
      const meaning = document.createElement("dd");
      showText(meaning, describe(label) || "—");
      list.append(term, meaning);
    });
  }

  function toggleGuidelines() {
    const panel = $("guidelines");
    panel.hidden = !panel.hidden;
    $("btn-guidelines").setAttribute("aria-expanded", String(!panel.hidden));
  }

  function render() {
    const empty = current === null;
    $("card").hidden = empty;
    $("empty").hidden = !empty;
    if (empty) return;
    showText($("text"), current.text);
    showText($("uid"), current.uid);
    $("queue").textContent = current.queue;
    $("truncated").hidden = !current.truncated;
    const suggestion = current.suggestion;
    $("suggestion").hidden = !suggestion;
    $("no-suggestion").hidden = Boolean(suggestion);
    $("btn-accept").disabled = !multi && !suggestion;
    if (suggestion) {
      showText($("sugg-label"), suggestion.label);
      $("sugg-label").title = describe(suggestion.label);
      const confidence = suggestion.confidence;
      $("sugg-meter").value = confidence === null ? 0 : confidence;
      $("sugg-conf").textContent =
        confidence === null ? "no confidence" :
        `${(100 * confidence).toFixed(0)}%${suggestion.calibrated ? " calibrated" : ""}`;
      showText($("sugg-reason"), suggestion.reasoning || "");
    }
    if (multi) renderSet(current.suggested_set || null);
    else {
      document.querySelectorAll(".choice").forEach((button) => {
        const same = suggestion && labels[Number(button.dataset.index)] === suggestion.label;
        button.classList.toggle("suggested", Boolean(same));
      });
    }
    closeFlagForm();
    showFlagged();
    shownAt = performance.now();
  }

  // Multi-label items: the suggested set pre-ticked, each label's probability beside it, and
  // the labels routing asks about marked.
  function renderSet(suggested) {
    const chosen = new Set(suggested ? suggested.labels : []);
    const unsure = new Set(suggested ? suggested.uncertain : []);
    const probs = suggested ? suggested.probs : {};
    document.querySelectorAll(".choice").forEach((row) => {
      const label = labels[Number(row.dataset.index)];
      const p = Object.prototype.hasOwnProperty.call(probs, label) ? probs[label] : null;
      row.querySelector("input").checked = chosen.has(label);
      row.classList.toggle("suggested", chosen.has(label));
      row.classList.toggle("uncertain", unsure.has(label));
      row.querySelector(".label-prob").textContent =
        typeof p === "number" ? `${(100 * p).toFixed(0)}%` : "";
      row.title = [describe(label), unsure.has(label) ? "uncertain: please check" : ""]
        .filter(Boolean).join(" — ");
    });
    if (suggested) {
      showText($("sugg-label"), suggested.labels.length ? suggested.labels.join(", ") : "no label");
      $("sugg-label").title = suggested.calibrated ? "calibrated probabilities" : "";
    }
  }

  function tickedLabels() {
    return labels.filter((_, index) =>
      document.querySelector(`.choice[data-index="${index}"] input`).checked);
  }

  function toggle(index) {
    if (!current || index >= labels.length) return;
    const box = document.querySelector(`.choice[data-index="${index}"] input`);
    box.checked = !box.checked;
  }

  // Enter on a multi-label item: the ticked set, as the suggestion (accept) or a correction.
  function submitTicked() {
    if (!current) return;
    const given = tickedLabels();
    const suggested = current.suggested_set;
    const same = suggested && suggested.labels.length === given.length &&
      suggested.labels.every((label) => given.includes(label));
    answer(suggested ? (same ? "accept" : "correct") : "label", { labels: given });
  }

  async function advance() {
    if (buffer.length === 0 && !drained) await prefetch();
    current = buffer.shift() || null;
    render();
    if (!drained) prefetch();
  }

  function refresh() {
    drained = false;
    return advance();
  }

  // `given`: { label } on single-label projects, { labels } on multi-label ones, or nothing.
  async function answer(action, given) {
    if (!current || busy) return;
    busy = true;
    const item = current;
    const spent = (performance.now() - shownAt) / 1000;
    try {
      const body = { action, time_spent_s: Math.round(spent * 1000) / 1000 };
      Object.assign(body, given || {});
      // The answer's reply brings the item after the prefetched one: one round trip per item.
      if (pending) await pending;
      const query = new URLSearchParams({ next: "true" });
      buffer.forEach((held) => query.append("exclude", held.id));
      const response = await api(
        "POST", `/api/v1/items/${item.id}/annotations?${query.toString()}`, body);
      if (response.status !== 201) {
        say(await detail(response), true);
        if (response.status === 409 || response.status === 404) await advance();
        return;
      }
      const saved = await response.json();
      if (saved.next && !heldIds().includes(saved.next.id)) buffer.push(saved.next);
      drained = saved.next === null;
      answered += 1;
      $("done-count").textContent = String(answered);
      if (saved.gold_feedback) showGoldFeedback(saved.gold_feedback);
      else say(action === "skip" ? "Skipped." : `Saved: ${action}${savedText(given)}.`);
      await advance();
    } catch (error) {
      say(error.message, true);
    } finally {
      busy = false;
    }
  }

  function savedText(given) {
    if (!given) return "";
    if (given.labels) return given.labels.length ? " " + given.labels.join(", ") : " no label";
    return " " + given.label;
  }

  function pick(index) {
    if (!current || index >= labels.length) return;
    const label = labels[index];
    const suggested = current.suggestion && current.suggestion.label;
    answer(suggested ? (label === suggested ? "accept" : "correct") : "label", { label });
  }

  async function undo() {
    if (busy) return;
    busy = true;
    try {
      const response = await api("POST", "/api/v1/undo", {});
      if (!response.ok) {
        say(await detail(response), true);
        return;
      }
      const body = await response.json();
      if (current) buffer.unshift(current);
      buffer = buffer.filter((item) => item.id !== body.item.id);
      current = body.item;
      answered = Math.max(0, answered - 1);
      $("done-count").textContent = String(answered);
      render();
      say("Answer withdrawn.");
    } catch (error) {
      say(error.message, true);
    } finally {
      busy = false;
    }
  }

  // Ask a reviewer to look at the item on screen (f: a reason, then Enter), or take one's flag
  // back (f again); the item stays to be answered or skipped.
  function showFlagged() {
    $("flagged").hidden = !(current && flagged.has(current.id));
  }

  function openFlagForm() {
    $("flag-form").hidden = false;
    $("flag-reason").value = "";
    $("flag-reason").focus();
  }

  function closeFlagForm() {
    $("flag-form").hidden = true;
    if (document.activeElement === $("flag-reason")) $("flag-reason").blur();
  }

  async function sendFlag(method, reason) {
    if (!current) return;
    const item = current;
    try {
      const body = method === "POST" ? { reason: reason || null } : undefined;
      const response = await api(method, `/api/v1/items/${item.id}/flag`, body);
      if (!response.ok) {
        say(await detail(response), true);
        return;
      }
      if (method === "POST") flagged.add(item.id);
      else flagged.delete(item.id);
      closeFlagForm();
      showFlagged();
      say(method === "POST" ? "Flagged for a reviewer." : "Flag taken back.");
    } catch (error) {
      say(error.message, true);
    }
  }

  function flagKey() {
    if (!current) return;
    if (flagged.has(current.id)) sendFlag("DELETE");
    else openFlagForm();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing = target && (target.isContentEditable ||
      (/^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) && target.type !== "checkbox"));
    if (typing) return;
    const key = event.key;
    let handled = true;
    if (/^[1-9]$/.test(key)) (multi ? toggle : pick)(Number(key) - 1);
    else if (multi && key === "Enter") submitTicked();
    else if (key === "Enter" || key === "a") {
      if (current && (multi ? current.suggested_set : current.suggestion)) answer("accept");
    } else if (key === "x") answer("reject");
    else if (key === " ") answer("skip");
    else if (key === "Backspace") undo();
    else if (key === "g") toggleGuidelines();
    else if (key === "f") flagKey();
    else handled = false;
    if (handled) event.preventDefault();
  }

  async function start() {
    const response = await api("GET", "/api/v1/project");
    const project = await response.json();
    labels = project.labels;
    multi = Boolean(project.multi_label);
    if (multi) showMultiLabelControls();
    descriptions = project.label_descriptions || {};
    showText($("task"), project.task);
    renderChoices();
    renderDescriptions();
    await advance();
  }

  // Multi-label projects: the main button submits the ticked set; the help says so.
  function showMultiLabelControls() {
    const key = document.createElement("kbd");
    key.textContent = "Enter";
    $("btn-accept").replaceChildren("Submit ticked ", key);
    $("help-single").hidden = true;
    $("help-multi").hidden = false;
  }

  $("btn-accept").addEventListener("click", () => (multi ? submitTicked() : answer("accept")));
  $("btn-reject").addEventListener("click", () => answer("reject"));
  $("btn-skip").addEventListener("click", () => answer("skip"));
  $("btn-undo").addEventListener("click", undo);
  $("btn-undo-empty").addEventListener("click", undo);
  $("btn-refresh").addEventListener("click", refresh);
  $("btn-guidelines").addEventListener("click", toggleGuidelines);
  $("btn-unflag").addEventListener("click", () => sendFlag("DELETE"));
  $("btn-flag-cancel").addEventListener("click", closeFlagForm);
  $("flag-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendFlag("POST", $("flag-reason").value.trim());
  });
  $("flag-reason").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeFlagForm();
    }
  });
  document.addEventListener("keydown", onKey);
  start().catch((error) => say(error.message, true));
})();
