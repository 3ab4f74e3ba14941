"""The upgrade's recorded progress: a JSON state file, written atomically after every step.

{"environment": NAME, "done": [step keys], "nodes": {hostname: "moved" | "moved back"},
 "before": {hostname: document JSON}, "stopped": null | {"step": KEY, "reason": TEXT}}

`before` keeps each node's document from before the upgrade: a node that fails its check is
moved back with it, also on a later run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from envrouter.errors import ValidationError
from envrouter.files import write_atomic


def default_path(env: str) -> str:
    return f"/var/lib/envrouter/upgrade/{env}.json"


@dataclass
class Progress:
    environment: str
    done: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    stopped: dict[str, str] | None = None

    def mark_done(self, key: str) -> None:
        if key not in self.done:
            self.done.append(key)

    @property
    def moved(self) -> list[str]:
        return sorted(n for n, s in self.nodes.items() if s == "moved")

    def to_json(self) -> str:
        return json.dumps({"environment": self.environment, "done": self.done,
                           "nodes": self.nodes, "before": self.before,
                           "stopped": self.stopped}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, env: str) -> Progress:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValidationError("upgrade state file", "content", f"not JSON: {exc}") from exc
        recorded = data.get("environment") if isinstance(data, dict) else None
        if recorded != env:
            raise ValidationError("upgrade state file", "environment",
                                  f"records {recorded!r}, not {env!r}")
        return cls(environment=env, done=list(data.get("done") or []),
                   nodes=dict(data.get("nodes") or {}), before=dict(data.get("before") or {}),
                   stopped=data.get("stopped"))


def load(path: str, env: str) -> Progress:
    """The recorded progress, or a fresh one when the file does not exist."""
    try:
        with open(path) as f:
            return Progress.from_json(f.read(), env)
    except FileNotFoundError:
        return Progress(environment=env)


def save(path: str, progress: Progress) -> None:
    write_atomic(path, progress.to_json())
