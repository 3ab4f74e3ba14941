// The page router: picks the view from the URL; the server sends the same shell for each.

import {
  clearToken,
  getToken,
  isReadOnly,
  READ_ONLY_EVENT,
  setFlash,
  setUnauthorizedHandler,
} from "./api.js";
import { renderEnvironment } from "./views/environment.js";
import { renderEnvironments } from "./views/environments.js";
import { renderLogin } from "./views/login.js";
import { renderOperations } from "./views/operations.js";

const routes = [
  { pattern: /^\/ui\/login\/?$/, view: renderLogin, public: true },
  { pattern: /^\/ui\/environments\/?$/, view: renderEnvironments },
  { pattern: /^\/ui\/environments\/(\d+)\/?$/, view: renderEnvironment },
  { pattern: /^\/ui\/environments\/(\d+)\/operations\/?$/, view: renderOperations },
];

let cleanup = null;
let renderCount = 0;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return render();
}

function updateNav() {
  const nav = document.getElementById("topnav");
  const loggedIn = Boolean(getToken());
  nav.hidden = !loggedIn;
  document.getElementById("token-kind").textContent =
    loggedIn && isReadOnly() ? "read-only token" : "";
}

async function render() {
  const path = location.pathname;
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  const main = document.getElementById("main");
  if (path === "/" || path === "/ui" || path === "/ui/") {
    return navigate(getToken() ? "/ui/environments" : "/ui/login", { replace: true });
  }
  const route = routes.find((r) => r.pattern.test(path));
  if (route && !route.public && !getToken()) {
    return navigate("/ui/login", { replace: true });
  }
  updateNav();
  const ticket = ++renderCount;
  main.replaceChildren();
  main.setAttribute("aria-busy", "true");
  try {
    if (!route) {
      document.title = "Not found — envrouter";
      main.append(notFound(path));
    } else {
      const match = path.match(route.pattern);
      cleanup = await route.view(main, match.slice(1), { navigate, stale: () => ticket !== renderCount });
    }
  } finally {
    if (ticket === renderCount) main.removeAttribute("aria-busy");
  }
  updateNav();
  // Move the focus to the new page's heading so keyboard and screen reader users start there,
  // unless the view put it somewhere on purpose (the login's token input).
  if (ticket === renderCount && !main.contains(document.activeElement)) {
    const heading = main.querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }
}

function notFound(path) {
  const p = document.createElement("p");
  p.textContent = `There is no page at ${path}. `;
  const a = document.createElement("a");
  a.href = "/ui/environments";
  a.textContent = "Back to the environments.";
  p.append(a);
  const h1 = document.createElement("h1");
  h1.textContent = "Page not found";
  const frag = document.createDocumentFragment();
  frag.append(h1, p);
  return frag;
}

setUnauthorizedHandler((error) => {
  // A page's parallel requests may all be refused: the first one sends the operator back.
  if (!getToken()) return;
  clearToken();
  setFlash(
    "Your token is wrong or has expired, so the server refused it" +
      (error.message ? ` (${error.message})` : "") +
      ". Log in again with a valid token.",
  );
  navigate("/ui/login");
});

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui/")) return;
  if (url.pathname.startsWith("/ui/static/")) return;
  if (url.pathname === location.pathname && url.hash) return; // in-page link
  event.preventDefault();
  navigate(url.pathname);
});

document.getElementById("logout").addEventListener("click", () => {
  clearToken();
  setFlash("You are logged out.");
  navigate("/ui/login");
});

document.addEventListener(READ_ONLY_EVENT, updateNav);
window.addEventListener("popstate", () => render());
render();
