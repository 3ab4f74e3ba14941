// Shows the API's problems ({object, field, reason}) next to the inputs they concern.
// The API is the only judge of a value: nothing here decides whether a value is valid.

import { h } from "./dom.js";

// "dns_list.1", "dns_list[1]", "body.dns_list.1" -> {root: "dns_list", index: 1}
export function parseField(field) {
  const parts = String(field || "")
    .split(/[.[\]]+/)
    .filter((part) => part !== "");
  if (parts[0] === "body") parts.shift();
  const root = parts.length ? parts[0] : "";
  const index = parts.length > 1 && /^\d+$/.test(parts[1]) ? Number(parts[1]) : null;
  return { root, index };
}

export function clearProblems(form) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-problems");
  if (summary) {
    summary.replaceChildren();
    summary.hidden = true;
  }
  const status = form.querySelector(".form-status");
  if (status) status.textContent = "";
}

// `fields` maps the API's field name (its first part) to {id, item}: the input's id and, for
// lists, the word for one entry ("DNS server") used with the entry's position.
// Problems about no known field go to the form's summary, with their object and field.
export function showProblems(form, problems, fields) {
  clearProblems(form);
  let first = null;
  const summary = form.querySelector(".form-problems");
  for (const problem of problems) {
    const { root, index } = parseField(problem.field);
    const target = fields[root];
    const input = target ? form.querySelector(`#${CSS.escape(target.id)}`) : null;
    if (input) {
      const errorEl = form.querySelector(`#${CSS.escape(target.id)}-error`);
      const prefix = index !== null && target.item ? `${target.item} ${index + 1}: ` : "";
      const line = h("span", { class: "problem" }, prefix + problem.reason);
      if (errorEl.childNodes.length) errorEl.append(h("br"));
      errorEl.append(line);
      errorEl.hidden = false;
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    } else if (summary) {
      const where = [problem.object, problem.field].filter(Boolean).join(", ");
      summary.append(h("li", {}, where ? `${where}: ${problem.reason}` : problem.reason));
      summary.hidden = false;
    }
  }
  if (first) first.focus();
  else if (summary && !summary.hidden) summary.focus();
}

export function showStatus(form, message) {
  const status = form.querySelector(".form-status");
  if (status) status.textContent = message;
}
