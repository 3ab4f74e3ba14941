// The vrouter settings form: PUT /environments/{id}/vrouter with every setting.

import { api, isReadOnly, READ_ONLY_EVENT } from "../api.js";
import { field, h } from "../dom.js";
import { clearProblems, showProblems, showStatus } from "../problems.js";

// API field -> the input that shows its problems; `item` names one entry of a list.
export const SETTINGS_FIELDS = {
  enabled: { id: "vr-enabled" },
  dns_list: { id: "vr-dns", item: "DNS server" },
  ntp_list: { id: "vr-ntp", item: "NTP server" },
  domain: { id: "vr-domain" },
  nat: { id: "vr-nat" },
  conntrack_sync: { id: "vr-sync" },
  bridge_kind: { id: "vr-bridge-kind" },
  host_link_cidr: { id: "vr-host-link" },
  namespace: { id: "vr-namespace" },
  ipv6: { id: "vr-ipv6" },
  ipv6_egress: { id: "vr-ipv6-egress" },
};

// "8.8.8.8, 1.1.1.1" or "8.8.8.8 1.1.1.1" -> ["8.8.8.8", "1.1.1.1"]. Only splits: the API judges.
export function splitList(value) {
  return value.split(/[\s,;]+/).filter((part) => part !== "");
}

function checkbox(checked) {
  return h("input", { type: "checkbox", checked: Boolean(checked) });
}

function textInput(value, attrs = {}) {
  const input = h("input", { type: "text", spellcheck: "false", autocomplete: "off", ...attrs });
  input.value = value ?? "";
  return input;
}

// A select of `choices`, plus `current` when the server holds another value (shown, not lost).
function select(choices, current) {
  return h(
    "select",
    {},
    [...new Set([...choices, current].filter(Boolean))].map((value) =>
      h("option", { value, selected: value === current }, value),
    ),
  );
}

export function readOnlyNote() {
  return h(
    "p",
    { class: "note read-only-note", role: "note" },
    "This token is read-only: you can see the settings but not change them. " +
      "Log in with an admin token to change them.",
  );
}

export function disableForRead(form) {
  for (const fs of form.querySelectorAll("fieldset")) fs.disabled = true;
  if (!form.querySelector(".read-only-note")) form.prepend(readOnlyNote());
}

// `onSaved(settings)` is called with the server's answer after a successful save.
export function settingsForm(envId, settings, { onSaved } = {}) {
  const inputs = {
    enabled: checkbox(settings.enabled),
    dns_list: textInput((settings.dns_list || []).join(", ")),
    ntp_list: textInput((settings.ntp_list || []).join(", ")),
    domain: textInput(settings.domain),
    nat: checkbox(settings.nat),
    conntrack_sync: checkbox(settings.conntrack_sync),
    bridge_kind: select(["linux", "ovs"], settings.bridge_kind),
    host_link_cidr: textInput(settings.host_link_cidr),
    namespace: textInput(settings.namespace),
    ipv6: checkbox(settings.ipv6),
    ipv6_egress: select(["nat66", "routed"], settings.ipv6_egress),
  };
  const f = (key, label, hint) => field({ id: SETTINGS_FIELDS[key].id, label, input: inputs[key], hint });

  const form = h(
    "form",
    { class: "card settings", id: "settings-form", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "vrouter settings"),
    h("ul", { class: "form-problems", role: "alert", tabindex: "-1", hidden: true }),
    h(
      "fieldset",
      {},
      h("legend", {}, "Virtual router"),
      f("enabled", "Enabled: run the virtual router on the controllers"),
      f("nat", "NAT: the nodes' outbound traffic leaves with the public VIP"),
      f("conntrack_sync", "Sync: copy the connection table between controllers (conntrackd)"),
      f(
        "ipv6",
        "IPv6: serve the nodes over IPv6 too",
        "Not served yet: the server refuses it until the agent and the VIPs carry IPv6.",
      ),
      f(
        "ipv6_egress",
        "IPv6 egress",
        "nat66: the nodes' IPv6 traffic leaves with the public IPv6 VIP; routed: no NAT " +
          "(the upstream routes the management prefix to the VIP).",
      ),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Upstream services"),
      f("dns_list", "Upstream DNS servers", "IPv4 addresses, separated by commas or spaces (at most 3)."),
      f(
        "ntp_list",
        "Upstream NTP servers",
        "Addresses or host names, separated by commas or spaces (at most 3).",
      ),
      f("domain", "Search domain", "Leave empty for none."),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Namespace and links"),
      f("bridge_kind", "Bridge kind", "linux: Linux bridges; ovs: Open vSwitch."),
      f("host_link_cidr", "Host link CIDR", "A /30 between the host and the namespace."),
      f("namespace", "Namespace name"),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", id: "settings-save" }, "Save settings"),
      h("p", { class: "form-status", role: "status" }),
    ),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems(form);
    const domain = inputs.domain.value.trim();
    const body = {
      enabled: inputs.enabled.checked,
      dns_list: splitList(inputs.dns_list.value),
      ntp_list: splitList(inputs.ntp_list.value),
      domain: domain === "" ? null : domain,
      nat: inputs.nat.checked,
      conntrack_sync: inputs.conntrack_sync.checked,
      bridge_kind: inputs.bridge_kind.value,
      host_link_cidr: inputs.host_link_cidr.value.trim(),
      namespace: inputs.namespace.value.trim(),
      ipv6: inputs.ipv6.checked,
      ipv6_egress: inputs.ipv6_egress.value,
    };
    const button = form.querySelector("#settings-save");
    button.disabled = true;
    showStatus(form, "Saving…");
    try {
      const saved = await api.put(`/environments/${envId}/vrouter`, body);
      const current = saved && typeof saved === "object" && "dns_list" in saved
        ? saved
        : await api.get(`/environments/${envId}/vrouter`);
      fill(inputs, current);
      showStatus(form, "Saved.");
      if (onSaved) onSaved(current);
    } catch (error) {
      if (error.status === 401) return;
      showProblems(form, error.problems, SETTINGS_FIELDS);
    } finally {
      button.disabled = false;
    }
  });

  if (isReadOnly()) disableForRead(form);
  else document.addEventListener(READ_ONLY_EVENT, () => disableForRead(form), { once: true });
  return form;
}

// Show what the server holds after a save (it may normalise values).
function fill(inputs, s) {
  inputs.enabled.checked = Boolean(s.enabled);
  inputs.dns_list.value = (s.dns_list || []).join(", ");
  inputs.ntp_list.value = (s.ntp_list || []).join(", ");
  inputs.domain.value = s.domain ?? "";
  inputs.nat.checked = Boolean(s.nat);
  inputs.conntrack_sync.checked = Boolean(s.conntrack_sync);
  inputs.bridge_kind.value = s.bridge_kind ?? inputs.bridge_kind.value;
  inputs.host_link_cidr.value = s.host_link_cidr ?? "";
  inputs.namespace.value = s.namespace ?? "";
  inputs.ipv6.checked = Boolean(s.ipv6);
  inputs.ipv6_egress.value = s.ipv6_egress ?? inputs.ipv6_egress.value;
}
