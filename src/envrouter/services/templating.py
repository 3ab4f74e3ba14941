"""Lay out daemon configuration files from the Jinja2 templates shipped in the package (pure).

Renderers get the document's values already checked (envrouter.document parses them into typed
fields) and check their own options in Python; a template only places already-checked values,
so it holds no logic beyond optional blocks and loops. Template names are paths relative to
the envrouter package, e.g. ``services/templates/chrony.conf.j2``.

jinja2 is imported on first render, not with this module: every OCF agent run is a new process
that imports the service modules, and importing them should stay cheap.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envrouter.errors import ValidationError

if TYPE_CHECKING:
    import jinja2

PACKAGE_DIR = Path(__file__).resolve().parent.parent


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE_DIR),
        # configuration files, not HTML: escaping would corrupt values such as paths
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    # the header comments quote the namespace name the way Python shows it
    env.filters["repr"] = repr
    return env


def absolute_paths(obj: str, **paths: str) -> None:
    """File paths a renderer writes into a configuration file: absolute, with no white space
    (the document's values are checked when it is parsed; paths come from the renderer's
    caller)."""
    for field, path in paths.items():
        if not os.path.isabs(path) or any(c.isspace() for c in path):
            raise ValidationError(obj, field, f"{path!r}: need an absolute path, no spaces")


def render_template(name: str, **context: Any) -> str:
    """Render the template at ``name`` (relative to the package) with ``context``."""
    return _environment().get_template(name).render(**context)


def render_daemon_conf(
    name: str, obj: str, namespace: str, paths: dict[str, str], **values: Any
) -> str:
    """A namespace daemon's configuration file: the template ``name`` with the namespace's name,
    the file `paths` the renderer's caller chose (checked by `absolute_paths`, errors naming
    `obj`) and the renderer's own `values`."""
    absolute_paths(obj, **paths)
    return render_template(name, namespace=namespace, **paths, **values)


def template_stamp(name: str) -> str:
    """Identifies the template's current content cheaply (size and mtime, no jinja2): part of
    the digest that tells a daemon's monitor whether its configuration must be re-rendered."""
    st = (PACKAGE_DIR / name).stat()
    return f"{name}:{st.st_size}:{st.st_mtime_ns}"
