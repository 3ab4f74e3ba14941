// The list of environments.

import { api } from "../api.js";
import { h, table, text } from "../dom.js";

// Counts the API may attach to an environment, in the order they are shown.
const COUNTS = [
  ["networks", "Networks"],
  ["nodes", "Nodes"],
  ["controllers", "Controllers"],
  ["vips", "VIPs"],
];

export function countOf(env, key) {
  const counts = env.counts && typeof env.counts === "object" ? env.counts : {};
  for (const value of [counts[key], env[`${key}_count`], env[`n_${key}`]]) {
    if (typeof value === "number") return value;
  }
  return null;
}

export async function renderEnvironments(main, _params, { stale }) {
  document.title = "Environments — envrouter";
  main.append(h("h1", {}, "Environments"));
  let envs;
  try {
    envs = await api.get("/environments");
  } catch (error) {
    if (stale()) return;
    main.append(h("p", { class: "error", role: "alert" }, `Cannot load the environments: ${error.message}`));
    return;
  }
  if (stale()) return;
  const shown = COUNTS.filter(([key]) => envs.some((env) => countOf(env, key) !== null));
  const rows = envs.map((env) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("a", { href: `/ui/environments/${env.id}` }, env.name)),
      h("td", {}, env.ha ? "yes" : "no"),
      shown.map(([key]) => h("td", { class: "num" }, text(countOf(env, key)))),
    ),
  );
  main.append(
    table(
      "Environments on this server",
      ["Name", "HA", ...shown.map(([, label]) => label)],
      rows,
      "No environment yet. Import one with: envrouter env import FILE.yaml",
    ),
  );
}
