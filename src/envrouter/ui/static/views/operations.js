// The operations view of one environment: each controller's health (its `envrouter status`,
// through the server's --status-command), the VIP moves the server recorded, and the latest
// drills with their timelines. Refreshed by polling; a value the server does not know is
// shown as "unknown", never guessed.

import { api, getAll } from "../api.js";
import { add, failed, h, replace, table, text } from "../dom.js";

export const OPS_REFRESH_MS = 5000;

const unknown = (why) => h("span", { class: "unknown", title: why || null }, "unknown");

function clock(seconds) {
  return typeof seconds === "number" ? new Date(seconds * 1000).toLocaleTimeString() : null;
}

function known(value, fmt = text) {
  return value === null || value === undefined ? unknown() : fmt(value);
}

export async function renderOperations(main, [envId], { stale }) {
  document.title = "Operations — envrouter";
  let env;
  try {
    env = await api.get(`/environments/${envId}`);
  } catch (error) {
    if (stale() || error.status === 401) return;
    add(main, h("h1", {}, "Environment not available"), failed(`environment ${envId}`, error));
    return;
  }
  if (stale()) return;
  document.title = `Operations of ${env.name} — envrouter`;
  const updated = h("p", { id: "ops-updated", class: "meta", "aria-live": "polite" }, "Loading…");
  const health = h("section", { id: "health", "aria-labelledby": "health-title" });
  const moves = h("section", { id: "moves", "aria-labelledby": "moves-title" });
  const drills = h("section", { id: "drills", "aria-labelledby": "drills-title" });
  const timeline = h("section", { id: "drill-timeline", "aria-live": "polite", hidden: true });
  add(main,
    h("p", { class: "breadcrumb" }, h("a", { href: "/ui/environments" }, "Environments"), " / ",
      h("a", { href: `/ui/environments/${envId}` }, env.name), " / operations"),
    h("h1", {}, `Operations of ${env.name}`),
    updated, health, moves, drills, timeline,
  );

  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const data = await getAll({
        health: `/environments/${envId}/health`,
        moves: `/environments/${envId}/vip-moves`,
        drills: "/drills",
      });
      if (stale()) return;
      if ([data.health, data.moves, data.drills].some((r) => !r.ok && r.error.status === 401)) return;
      renderHealth(health, data.health);
      renderMoves(moves, data.moves);
      renderDrills(drills, data.drills, (drill) => showTimeline(timeline, drill));
      const at = data.health.ok ? clock(data.health.data.updated_at) : null;
      replace(updated, `Updated at ${new Date().toLocaleTimeString()}`,
        at ? ` · controllers' status collected at ${at}` : " · controllers' status unknown",
        ` · refreshed every ${OPS_REFRESH_MS / 1000} s`);
      updated.dataset.refreshed = String(Date.now());
    } finally {
      busy = false;
    }
  }
  await refresh();
  const timer = setInterval(() => {
    if (!document.hidden) refresh();
  }, OPS_REFRESH_MS);
  return () => clearInterval(timer);
}

function healthText(c) {
  if (c.error) return [unknown(c.error), h("span", { class: "hint" }, ` (${c.error})`)];
  if (c.degraded === null || c.degraded === undefined) return unknown();
  return c.degraded
    ? h("span", { class: "error" }, `degraded: ${c.reasons.join("; ") || "no reason given"}`)
    : "healthy";
}

function vipsHeld(c) {
  if (c.error) return unknown(c.error);
  const held = c.vips.filter((v) => v.here === true).map((v) => `${v.name} (${text(v.address)})`);
  const unsure = c.vips.filter((v) => v.here === null).map((v) => v.name);
  if (unsure.length) return [held.join(", "), held.length ? "; " : "", unknown(`${unsure.join(", ")}: unknown`)];
  return held.length ? held.join(", ") : "none";
}

function resources(c) {
  if (c.error) return unknown(c.error);
  if (!c.resources.length) return "none here";
  return c.resources.map((r) => `${r.id} ${r.failed ? "FAILED" : text(r.role)}`).join(", ");
}

function conntrackd(c) {
  const d = c.conntrackd;
  if (!d) return unknown(c.error);
  if (d.configured === false) return "not configured";
  if (!d.answering) return d.answering === false ? h("span", { class: "error" }, `not answering${d.error ? `: ${d.error}` : ""}`) : unknown(d.error);
  return [
    "cache ", known(d.internal_cache), " internal / ", known(d.external_cache), " external · sync errors ",
    known(d.sync_errors),
  ];
}

function nat(c) {
  const n = c.nat;
  if (!n) return unknown(c.error);
  if (n.error) return unknown(n.error);
  return [known(n.entries), " / ", known(n.max)];
}

function dns(c) {
  const d = c.dns;
  if (!d) return unknown(c.error);
  if (d.answering === null) return unknown(d.error);
  if (!d.answering) return h("span", { class: "error" }, `not answering${d.error ? `: ${d.error}` : ""}`);
  return `answering · upstreams ${d.upstreams_reachable}/${d.upstreams} reachable`;
}

function ntp(c) {
  const n = c.ntp;
  if (!n) return unknown(c.error);
  if (n.answering === null) return unknown(n.error);
  if (!n.answering) return h("span", { class: "error" }, `not answering${n.error ? `: ${n.error}` : ""}`);
  const sync = n.synchronised === null ? unknown() : n.synchronised ? "synchronised" : h("span", { class: "error" }, "not synchronised");
  return [sync, " · stratum ", known(n.stratum), " · offset ",
    known(n.offset_s, (s) => `${(s * 1000).toFixed(2)} ms`)];
}

export function renderHealth(section, result) {
  const title = h("h2", { id: "health-title" }, "Controller health");
  if (!result.ok) {
    replace(section, title, failed("the controllers' health", result.error));
    return;
  }
  const state = result.data;
  const note = state.source === "unknown"
    ? h("p", { class: "note" },
      `The server cannot ask the controllers, so their health is unknown (nothing is guessed)` +
        (state.error ? `: ${state.error}` : "."))
    : null;
  const rows = state.controllers.map((c) =>
    h("tr", { dataset: { node: c.node } },
      h("th", { scope: "row" }, c.node),
      ...[healthText, vipsHeld, resources, conntrackd, nat, dns, ntp].map((fn) => h("td", {}, fn(c)))));
  replace(section, title, note,
    table(`Each controller's envrouter status (source: ${state.source})`,
      ["Controller", "Health", "VIPs held", "Resources here", "conntrackd", "NAT table", "DNS", "NTP"],
      rows, "No controller answered."));
}

export function renderMoves(section, result) {
  const title = h("h2", { id: "moves-title" }, "Last VIP moves");
  if (!result.ok) {
    replace(section, title, failed("the VIP moves", result.error));
    return;
  }
  const { moves, observed_since: since } = result.data;
  const who = (nodes) => (nodes.length ? nodes.join(", ") : "no controller");
  replace(section, title,
    h("p", { class: "hint" }, since
      ? `Recorded by this server from its polls since ${clock(since)} (kept in memory: lost when it restarts).`
      : "Nothing polled yet: the server records a move when the polled holder of a VIP changes."),
    table("VIP moves, newest first", ["When", "VIP", "From", "To"],
      moves.map((m) => h("tr", {}, h("td", {}, clock(m.at)),
        h("td", {}, `${m.vip}${m.address ? ` (${m.address})` : ""}`),
        h("td", {}, who(m.from_nodes)), h("td", {}, who(m.to_nodes)))),
      "No move seen."));
}

export function renderDrills(section, result, show) {
  const title = h("h2", { id: "drills-title" }, "Latest drills");
  if (!result.ok) {
    replace(section, title, failed("the drills", result.error));
    return;
  }
  const { configured, drills } = result.data;
  if (!configured) {
    replace(section, title, h("p", { class: "hint" }, "The server has no drills directory (serve --drills-dir; the lab sets it)."));
    return;
  }
  const ms = (v) => `${Math.round(v)} ms`;
  replace(section, title,
    table("Drill reports, newest first",
      ["When", "Drill", "Verdict", "Longest gap", "VIPs moved after", "Holder", "Timeline"],
      drills.map((d) => h("tr", { dataset: { drill: d.id } },
        h("td", {}, d.t_fault ? new Date(d.t_fault * 1000).toLocaleString() : unknown()),
        h("th", { scope: "row" }, text(d.drill || d.id)),
        h("td", {}, d.error ? h("span", { class: "error" }, d.error)
          : d.passed === null ? unknown() : d.passed ? "passed" : h("span", { class: "error" }, `failed: ${d.failures.join("; ")}`)),
        h("td", {}, known(d.longest_gap_ms, ms)),
        h("td", {}, known(d.vips_moved_after_ms, ms)),
        h("td", {}, `${text(d.holder_before)} → ${text(d.holder_after)}`),
        h("td", {}, d.timeline
          ? h("button", { type: "button", class: "secondary", "aria-label": `Show the timeline of ${d.id}`, onclick: () => show(d) }, "Show timeline")
          : "none"))),
      "No drill report yet."));
}

async function showTimeline(section, drill) {
  section.hidden = false;
  const title = () => h("h2", {}, `Timeline of ${drill.id}`);
  replace(section, title(), h("p", {}, "Loading…"));
  try {
    const svg = await api.get(`/drills/${encodeURIComponent(drill.id)}/timeline.svg`);
    // an <img> of a data: URL: the SVG is drawn, never run (and the token is not in a URL)
    replace(section, title(), h("figure", {},
      h("img", { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`, alt: `Timeline of the drill ${drill.id}`, class: "timeline" })));
  } catch (error) {
    if (error.status === 401) return;
    replace(section, title(), failed("the timeline", error));
  }
  section.scrollIntoView({ block: "nearest" });
}
