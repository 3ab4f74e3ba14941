// One environment: live cluster state, VIPs, vrouter settings, networks, nodes and roles.

import { api, getAll } from "../api.js";
import { add, failed, h, replace, table, text } from "../dom.js";
import { settingsForm } from "./settings.js";
import { vipsSection } from "./vips.js";

const CLUSTER_REFRESH_MS = 15000;

// Load every part at once; a part that fails shows its own error, the rest still shows.
async function load(envId) {
  const base = `/environments/${envId}`;
  return getAll({
    env: base,
    networks: `${base}/networks`,
    nodes: `${base}/nodes`,
    vips: `${base}/vips`,
    vrouter: `${base}/vrouter`,
    cluster: `${base}/cluster`,
  });
}

function isController(node) {
  return (node.roles || []).includes("controller");
}

export async function renderEnvironment(main, [envId], { stale }) {
  document.title = "Environment — envrouter";
  const data = await load(envId);
  if (stale()) return;
  if (!data.env.ok) {
    if (data.env.error.status === 401) return;
    add(main,
      h("h1", {}, "Environment not available"),
      failed(`environment ${envId}`, data.env.error),
      h("p", {}, h("a", { href: "/ui/environments" }, "Back to the environments.")),
    );
    return;
  }
  const env = data.env.data;
  document.title = `${env.name} — envrouter`;
  const nodes = data.nodes.ok ? data.nodes.data : [];
  const controllers = nodes.filter(isController);

  const clusterSection = h("section", { id: "cluster", "aria-labelledby": "cluster-title" });
  const documentView = h("section", { id: "document", "aria-live": "polite", hidden: true });

  add(main,
    h("p", { class: "breadcrumb" }, h("a", { href: "/ui/environments" }, "Environments"), " / ", env.name),
    h("h1", {}, `Environment ${env.name}`),
    h(
      "p",
      { class: "meta" },
      `HA: ${env.ha ? "yes" : "no"} · controllers: ${data.nodes.ok ? controllers.length : "—"}` +
        ` · nodes: ${data.nodes.ok ? nodes.length : "—"}` +
        ` · networks: ${data.networks.ok ? data.networks.data.length : "—"}`,
    ),
    h(
      "nav",
      { class: "toc", "aria-label": "On this page" },
      [
        ["#cluster", "Live state"],
        ["#vips", "VIPs"],
        ["#settings-form", "Settings"],
        ["#networks", "Networks"],
        ["#nodes", "Nodes"],
        [`/ui/environments/${envId}/operations`, "Operations: health, VIP moves, drills"],
      ].map(([href, label]) => h("a", { href }, label)),
    ),
    data.nodes.ok && controllers.length === 0
      ? h(
          "p",
          { class: "note", id: "no-controllers" },
          "This environment has no controller yet. The vrouter runs on the controllers: until " +
            "one is added, nothing holds the VIPs and the nodes have no vrouter gateway.",
        )
      : null,
    clusterSection,
    data.vips.ok
      ? vipsSection(envId, data.vips.data, { networks: data.networks.ok ? data.networks.data : [] })
      : h("section", { id: "vips" }, h("h2", {}, "VIPs"), failed("the VIPs", data.vips.error)),
    data.vrouter.ok
      ? settingsForm(envId, data.vrouter.data)
      : h(
          "section",
          { id: "settings-form" },
          h("h2", {}, "vrouter settings"),
          failed("the vrouter settings", data.vrouter.error),
        ),
    networksSection(data.networks),
    nodesSection(envId, data.nodes, documentView),
    documentView,
  );

  renderCluster(clusterSection, data.cluster, refreshCluster);

  async function refreshCluster() {
    let result;
    try {
      result = { ok: true, data: await api.get(`/environments/${envId}/cluster`) };
    } catch (error) {
      if (error.status === 401) return;
      result = { ok: false, error };
    }
    if (!stale()) renderCluster(clusterSection, result, refreshCluster);
  }
  const timer = setInterval(() => {
    if (!document.hidden) refreshCluster();
  }, CLUSTER_REFRESH_MS);
  return () => clearInterval(timer);
}

// The live state, exactly as the server reports it: "unknown" whenever it does not know.
export function renderCluster(section, result, refresh) {
  const unknown = () => h("span", { class: "unknown" }, "unknown");
  const rows = [];
  let note = null;
  let nodesTable = null;
  if (!result.ok) {
    note = `The server did not give the cluster state (${result.error.message}), so it is unknown.`;
    rows.push(["Source", unknown()], ["Quorate", unknown()], ["VIP holder", unknown()]);
  } else {
    const state = result.data || {};
    const known = Boolean(state.source) && state.source !== "unknown";
    const show = (value, fmt = text) =>
      known && value !== null && value !== undefined ? fmt(value) : unknown();
    if (!known) {
      note =
        "The server cannot reach the cluster, so its state is unknown (nothing is guessed)" +
        (state.error ? `: ${state.error}` : ".");
    }
    rows.push(
      ["Source", known ? state.source : unknown()],
      ["Quorate", show(state.quorate, (q) => (q ? "yes" : "no"))],
      ["VIP holder", show(state.vip_holder)],
    );
    if (known) {
      // Anything else the server reports, shown as given.
      for (const [key, value] of Object.entries(state)) {
        if (["source", "quorate", "vip_holder", "nodes", "error"].includes(key)) continue;
        if (value !== null && typeof value === "object") continue;
        rows.push([key.replace(/_/g, " "), show(value)]);
      }
      if (state.error) rows.push(["error", state.error]);
      const nodes = Array.isArray(state.nodes) ? state.nodes.filter((n) => n && typeof n === "object") : [];
      if (nodes.length) {
        const keys = [...new Set(nodes.flatMap((n) => Object.keys(n)))];
        nodesTable = table(
          "Cluster nodes as the cluster reports them",
          keys.map((k) => k.replace(/_/g, " ")),
          nodes.map((n) => h("tr", {}, keys.map((k) => h("td", {}, typeof n[k] === "boolean" ? (n[k] ? "yes" : "no") : text(n[k]))))),
          "",
        );
      }
    }
  }
  replace(section,
    h("h2", { id: "cluster-title" }, "Live cluster state"),
    note ? h("p", { class: "note" }, note) : null,
    h("dl", { class: "state" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    nodesTable,
    h("button", { type: "button", class: "secondary", onclick: refresh }, "Refresh"),
  );
}

function networksSection(result) {
  const section = h("section", { id: "networks", "aria-labelledby": "networks-title" },
    h("h2", { id: "networks-title" }, "Networks"));
  if (!result.ok) {
    section.append(failed("the networks", result.error));
    return section;
  }
  const rows = result.data.map((net) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, net.name),
      h("td", {}, text(net.role)),
      h("td", {}, text(net.cidr)),
      h("td", {}, text(net.gateway)),
      h("td", {}, text(net.vlan)),
      h("td", {}, text(net.bridge)),
      h("td", {}, text((net.ranges || []).map((r) => `${r.start}–${r.end}`))),
      h("td", {}, text(net.cidr6
        ? [`${net.cidr6}`, ...(net.gateway6 ? [`gateway ${net.gateway6}`] : []),
           ...(net.ranges6 || []).map((r) => `${r.start}–${r.end}`)]
        : null)),
    ),
  );
  section.append(
    table("Networks of this environment",
      ["Name", "Role", "CIDR", "Gateway", "VLAN", "Bridge", "Ranges", "IPv6"], rows,
      "No network yet."),
  );
  return section;
}

function nodesSection(envId, result, documentView) {
  const section = h("section", { id: "nodes", "aria-labelledby": "nodes-title" },
    h("h2", { id: "nodes-title" }, "Nodes and roles"));
  if (!result.ok) {
    section.append(failed("the nodes", result.error));
    return section;
  }
  const rows = result.data.map((node) => {
    const addresses = node.addresses && typeof node.addresses === "object"
      ? Object.entries(node.addresses).map(([net, ip]) => `${net}: ${ip}`)
      : [];
    if (node.addresses6 && typeof node.addresses6 === "object") {
      for (const [net, ip] of Object.entries(node.addresses6)) addresses.push(`${net}: ${ip}`);
    }
    if (node.namespace_address) addresses.push(`vrouter namespace: ${node.namespace_address}`);
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, node.hostname),
      h("td", {}, text(node.roles)),
      h("td", {}, text(node.status)),
      h("td", {}, text(addresses)),
      h(
        "td",
        {},
        h("button", {
          type: "button",
          class: "secondary",
          "aria-label": `Show document of ${node.hostname}`,
          onclick: () => showDocument(envId, node, documentView),
        }, "Show document"),
      ),
    );
  });
  section.append(
    table("Nodes of this environment",
      ["Hostname", "Roles", "Status", "Addresses", "Deployment document"], rows, "No node yet."),
  );
  return section;
}

async function showDocument(envId, node, view) {
  view.hidden = false;
  view.replaceChildren(h("h2", { id: "document-title", tabindex: "-1" },
    `Deployment document of ${node.hostname}`), h("p", {}, "Loading…"));
  let content;
  try {
    const doc = await api.get(`/environments/${envId}/nodes/${node.id}/document`);
    content = h("pre", { class: "document", tabindex: "0" }, JSON.stringify(doc, null, 2));
  } catch (error) {
    if (error.status === 401) return;
    content = failed(`the document of ${node.hostname}`, error);
  }
  view.replaceChildren(view.firstChild, content);
  view.firstChild.focus();
}
