// Untrusted text (item texts, labels, names, notes) reaches the pages only through showText:
// text nodes, never parsed as HTML.
"use strict";
(() => {
  // Bidirectional controls (embeddings, overrides, isolates, marks) let a text reorder what the
  // reader sees relative to what is stored: each is shown as a marker instead of applied.
  const BIDI_CONTROL = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

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

  window.labelloop = Object.freeze({ showText });
})();
