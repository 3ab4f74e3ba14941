// Small DOM helpers. Every text from the server goes in as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "for") el.htmlFor = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

// A value the server did not give is shown as a dash, never guessed.
export function text(value) {
  if (value === undefined || value === null || value === "") return "—";
  if (Array.isArray(value)) return value.length ? value.join(", ") : "—";
  return String(value);
}

// A table; `rows` empty shows `empty` in one full-width cell instead of breaking.
export function table(caption, headers, rows, empty) {
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((head) => h("th", { scope: "col" }, head)))),
    h(
      "tbody",
      {},
      rows.length
        ? rows
        : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, empty)),
    ),
  );
}

// An input with its label and a place for the API's error about it.
// `hint` is a short text under the label, tied to the input by aria-describedby.
export function field({ id, label, input, hint }) {
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  input.id = id;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  input.setAttribute("aria-describedby", describedBy);
  const isCheck = input.type === "checkbox";
  const labelEl = h("label", { for: id }, label);
  return h(
    "div",
    { class: isCheck ? "field field-check" : "field", dataset: { field: id } },
    isCheck ? [input, labelEl] : [labelEl, input],
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "field-error", id: errorId, hidden: true }),
  );
}

// What could not be loaded, and why (an alert, in place of the part).
export function failed(what, error) {
  return h("p", { class: "error", role: "alert" }, `Cannot load ${what}: ${error.message}`);
}

// Element.append / replaceChildren would print null as "null": these skip empty children.
export function add(el, ...children) {
  append(el, children);
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}
