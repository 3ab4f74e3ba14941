// Login: the operator pastes an API token; the server says whether it is good.

import { api, getToken, markReadOnly, setToken, takeFlash } from "../api.js";
import { add, field, h } from "../dom.js";
import { showProblems } from "../problems.js";

export async function renderLogin(main, _params, { navigate }) {
  document.title = "Log in — envrouter";
  const flash = takeFlash();
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const form = h(
    "form",
    { class: "card login", novalidate: false },
    h("h1", {}, "Log in to envrouter"),
    flash ? h("p", { class: "flash", role: "alert" }, flash) : null,
    h("ul", { class: "form-problems", role: "alert", tabindex: "-1", hidden: true }),
    field({
      id: "token",
      label: "API token",
      input,
      hint: "Create one on the server with: envrouter token create --name NAME",
    }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Log in")),
    h("p", { class: "form-status", role: "status" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      // The server says whether it knows the token and whether it may write.
      const me = await api.get("/token", { token, quiet401: true });
      setToken(token);
      if (me && me.read_only) markReadOnly();
      await navigate("/ui/environments");
    } catch (error) {
      const problems =
        error.status === 401
          ? [
              {
                field: "token",
                reason:
                  "This token is wrong or has expired: the server refused it" +
                  (error.message ? ` (${error.message})` : "") +
                  ".",
              },
            ]
          : error.problems;
      showProblems(form, problems, { token: { id: "token" } });
    } finally {
      button.disabled = false;
    }
  });
  add(main, form);
  if (getToken()) {
    main.append(
      h("p", {}, "You are logged in. ", h("a", { href: "/ui/environments" }, "Go to the environments.")),
    );
  }
  input.focus();
}
