"""Manual pages from the commands themselves: envrouter(1) and one envrouter-GROUP(1) per
command group, rendered from the Typer/Click definitions (the same text as `--help`), so the
pages cannot drift from the options. The Debian package builds them at package build time:

    python -m envrouter.cli.manpage OUTDIR [--date YYYY-MM-DD]

`render_group_page` and `render_main_page` are pure (a Click command in, roff text out).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

import click

from envrouter import __version__

SECTION = "1"


def roff_escape(text: str) -> str:
    """Text safe in a roff line: backslashes and hyphens escaped, no line starting with a
    control character ('.' or "'")."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in out.splitlines() or [""]:
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(text: str | None) -> list[str]:
    if not text:
        return []
    # Click's \b marks a paragraph that must not be rewrapped; roff wraps anyway
    text = text.replace("\b\n", "")
    return [" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip()]


def _header(name: str, date: str) -> list[str]:
    return [f'.TH "{name.upper()}" "{SECTION}" "{date}" "envrouter {__version__}" '
            '"envrouter manual"']


def _context(cmd: click.Command, name: str, parent: click.Context | None = None
             ) -> click.Context:
    return cmd.context_class(cmd, info_name=name, parent=parent)


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out: list[str] = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            if param.param_type_name == "argument":
                out += [".TP", f"\\fI{roff_escape(param.human_readable_name)}\\fR",
                        "(argument)"]
            continue
        opts, help_text = record
        out += [".TP", f"\\fB{roff_escape(opts)}\\fR", roff_escape(help_text or "")]
    return out


def _usage(cmd: click.Command, ctx: click.Context) -> str:
    pieces = cmd.collect_usage_pieces(ctx)
    return " ".join([ctx.command_path, *pieces])


def _command_section(cmd: click.Command, ctx: click.Context, title: str | None) -> list[str]:
    out: list[str] = []
    if title:
        out += [f'.SS "{roff_escape(title)}"']
    out += [".nf", f"\\fB{roff_escape(_usage(cmd, ctx))}\\fR", ".fi"]
    for para in _paragraphs(cmd.help):
        out += [".PP", roff_escape(para)]
    options = _options(cmd, ctx)
    if options:
        out += [".PP", "Options:", *options]
    return out


def render_group_page(group: str, command: click.Command, summary: str, date: str) -> str:
    """envrouter-GROUP(1): a group of sub-commands, or a single command."""
    name = f"envrouter-{group}"
    root = _context(command, f"envrouter {group}")
    lines = _header(name, date)
    lines += [".SH NAME", f"{roff_escape(name)} \\- {roff_escape(summary)}"]
    if hasattr(command, "list_commands"):  # a group (Typer may bring its own Click)
        subs = [(n, command.get_command(root, n)) for n in command.list_commands(root)]
        lines += [".SH SYNOPSIS", f"\\fBenvrouter {roff_escape(group)}\\fR \\fICOMMAND\\fR "
                  "[\\fIOPTIONS\\fR]"]
        lines += [".SH DESCRIPTION"]
        for para in _paragraphs(command.help) or [summary]:
            lines += [".PP", roff_escape(para)]
        lines += [".SH COMMANDS"]
        for sub_name, sub in subs:
            if sub is None or sub.hidden:
                continue
            ctx = _context(sub, sub_name, parent=root)
            lines += _command_section(sub, ctx, f"envrouter {group} {sub_name}")
    else:
        lines += [".SH SYNOPSIS", ".nf", f"\\fB{roff_escape(_usage(command, root))}\\fR", ".fi",
                  ".SH DESCRIPTION"]
        for para in _paragraphs(command.help) or [summary]:
            lines += [".PP", roff_escape(para)]
        options = _options(command, root)
        if options:
            lines += [".SH OPTIONS", *options]
    lines += [".SH SEE ALSO", "\\fBenvrouter\\fR(1)"]
    return "\n".join(lines) + "\n"


def render_main_page(groups: Iterable[tuple[str, str]], date: str) -> str:
    """envrouter(1): the command groups, each with its own page."""
    groups = list(groups)
    lines = _header("envrouter", date)
    lines += [".SH NAME", "envrouter \\- a highly available virtual router for cluster nodes",
              ".SH SYNOPSIS", "\\fBenvrouter\\fR \\fICOMMAND\\fR [\\fIARGS\\fR]...",
              ".br", "\\fBenvrouter\\fR \\fB\\-\\-version\\fR",
              ".SH DESCRIPTION", ".PP",
              roff_escape("A virtual router in a network namespace on every controller, two "
                          "VIPs kept by Pacemaker, connection sync by conntrackd, DNS and NTP "
                          "inside the namespace; a control plane (REST API, UI, database) "
                          "that hands each node its deployment document; an agent that "
                          "converges each node to it."),
              ".SH COMMANDS"]
    for name, summary in groups:
        lines += [".TP", f"\\fB{roff_escape(name)}\\fR", roff_escape(summary)
                  + f" See \\fBenvrouter\\-{roff_escape(name)}\\fR(1)."]
    lines += [".SH FILES",
              ".TP", "/etc/envrouter/envrouter.toml",
              "the control plane's database URL (\\fBdatabase_url\\fR)",
              ".TP", "/etc/envrouter/serve.env",
              "options of \\fBenvrouter\\-serve.service\\fR",
              ".TP", "/var/lib/envrouter/",
              "a node's saved deployment document; the control plane's database (server/)",
              ".TP", "/usr/lib/ocf/resource.d/envrouter/",
              "the OCF resource agents",
              ".SH SEE ALSO",
              ", ".join(f"\\fBenvrouter\\-{roff_escape(n)}\\fR(1)" for n, _ in groups)]
    return "\n".join(lines) + "\n"


def command_of(module: str) -> click.Command:
    import typer

    return typer.main.get_command(importlib.import_module(module).app)


def write_pages(outdir: str, date: str) -> list[str]:
    from envrouter.cli.main import GROUPS

    os.makedirs(outdir, exist_ok=True)
    written = []
    pages = {"envrouter": render_main_page(((n, t) for n, (_, t) in GROUPS.items()), date)}
    for name, (module, summary) in GROUPS.items():
        pages[f"envrouter-{name}"] = render_group_page(name, command_of(module), summary, date)
    for name, text in pages.items():
        path = os.path.join(outdir, f"{name}.{SECTION}")
        with open(path, "w") as f:
            f.write(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    date = "1970-01-01"
    if "--date" in args:
        i = args.index("--date")
        date = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        print("usage: python -m envrouter.cli.manpage OUTDIR [--date YYYY-MM-DD]",
              file=sys.stderr)
        return 2
    for path in write_pages(args[0], date):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
