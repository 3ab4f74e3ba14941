// The VIPs: what each one is, and a form per VIP to set a user-defined address or give it
// back to automatic allocation (PUT /environments/{id}/vips/{name}).

import { api, isReadOnly, READ_ONLY_EVENT } from "../api.js";
import { field, h, replace, table, text } from "../dom.js";
import { clearProblems, showProblems, showStatus } from "../problems.js";
import { readOnlyNote } from "./settings.js";

export function vipInputId(name) {
  return `vip-${String(name).replace(/[^A-Za-z0-9_-]/g, "_")}-address`;
}

// The VIPs the networks call for: both IPv4 ones, and the IPv6 twin of each on a network that
// has an IPv6 prefix.
export function expectedVips(networks) {
  const byRole = Object.fromEntries((networks || []).map((n) => [n.role, n]));
  const out = ["vrouter", "vrouter_pub"];
  if (byRole.management && byRole.management.cidr6) out.push("vrouter6");
  if (byRole.public && byRole.public.cidr6) out.push("vrouter_pub6");
  return out;
}

export function vipsSection(envId, vips, { onChanged, networks } = {}) {
  const section = h("section", { id: "vips", "aria-labelledby": "vips-title" });
  render(vips);
  if (!isReadOnly()) {
    // The server refused a write (403): show every VIP field disabled, with the note.
    document.addEventListener(READ_ONLY_EVENT, () => render(vips), { once: true });
  }
  return section;

  async function reload(status) {
    let fresh;
    try {
      fresh = await api.get(`/environments/${envId}/vips`);
    } catch (error) {
      if (error.status === 401) return;
      render(vips, `Cannot reload the VIPs: ${error.message}`);
      return;
    }
    vips = fresh;
    render(vips);
    if (status) {
      const form = section.querySelector(`form[data-vip="${CSS.escape(status.name)}"]`);
      if (form) {
        const vip = vips.find((v) => v.name === status.name);
        showStatus(form, status.message(vip));
        form.querySelector("input").focus();
      }
    }
    if (onChanged) onChanged(vips);
  }

  function render(list, problem) {
    const readOnly = isReadOnly();
    const rows = list.map((vip) =>
      h(
        "tr",
        { dataset: { vip: vip.name } },
        h("th", { scope: "row" }, vip.name),
        h("td", {}, text(vip.network)),
        h("td", {}, text(vip.namespace)),
        h("td", { class: "address" }, text(vip.address)),
        h(
          "td",
          {},
          h("span", { class: vip.user_defined ? "badge user" : "badge auto" },
            vip.user_defined ? "user-defined" : "automatic"),
        ),
        h("td", {}, vipForm(vip, readOnly)),
      ),
    );
    replace(section,
      h("h2", { id: "vips-title" }, "VIPs"),
      problem ? h("p", { class: "error", role: "alert" }, problem) : null,
      readOnly && list.length ? readOnlyNote() : null,
      table(
        "The vrouter's virtual IPs",
        ["Name", "Network", "Namespace", "Address", "Allocation", "Change"],
        rows,
        "No VIPs reserved yet.",
      ),
      expectedVips(networks).some((name) => !list.some((v) => v.name === name))
        ? reserveForm(readOnly)
        : null,
    );
  }

  function vipForm(vip, readOnly) {
    const input = h("input", {
      type: "text",
      name: "address",
      spellcheck: "false",
      autocomplete: "off",
      placeholder: vip.address || (String(vip.name).endsWith("6") ? "an IPv6 address" : "a.b.c.d"),
    });
    input.value = vip.user_defined ? vip.address : "";
    const fields = { address: { id: vipInputId(vip.name) } };
    const auto = h(
      "button",
      { type: "button", class: "secondary", disabled: !vip.user_defined, "data-action": "auto" },
      "Back to automatic",
    );
    const form = h(
      "form",
      { class: "vip-form", dataset: { vip: vip.name }, "aria-label": `Change VIP ${vip.name}` },
      h("ul", { class: "form-problems", role: "alert", tabindex: "-1", hidden: true }),
      h(
        "fieldset",
        { disabled: readOnly },
        field({ id: fields.address.id, label: `User-defined address for ${vip.name}`, input }),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", "data-action": "set" }, "Set address"),
          auto,
        ),
      ),
      h("p", { class: "form-status", role: "status" }),
    );

    const put = async (address, message) => {
      clearProblems(form);
      showStatus(form, "Saving…");
      try {
        await api.put(`/environments/${envId}/vips/${encodeURIComponent(vip.name)}`, { address });
        await reload({ name: vip.name, message });
      } catch (error) {
        if (error.status === 401) return;
        showProblems(form, error.problems, fields);
      }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      put(input.value.trim(), (saved) => `${vip.name} is now ${text(saved && saved.address)} (user-defined).`);
    });
    auto.addEventListener("click", () =>
      put(null, (saved) => `${vip.name} is automatic again: ${text(saved && saved.address)}.`),
    );
    return form;
  }

  function reserveForm(readOnly) {
    const form = h(
      "form",
      { class: "reserve-form" },
      h("ul", { class: "form-problems", role: "alert", tabindex: "-1", hidden: true }),
      h(
        "p",
        { class: "note" },
        "The vrouter VIPs (management and public, and their IPv6 twins vrouter6 and " +
          "vrouter_pub6 on networks with an IPv6 prefix) are reserved from the networks' ranges.",
      ),
      h("button", { type: "submit", disabled: readOnly }, "Reserve the VIPs"),
      h("p", { class: "form-status", role: "status" }),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearProblems(form);
      try {
        await api.post(`/environments/${envId}/vrouter/reserve-vips`);
        await reload();
      } catch (error) {
        if (error.status === 401) return;
        showProblems(form, error.problems, {});
      }
    });
    return form;
  }
}
