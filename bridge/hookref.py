"""The hook reference of docs/plugins.md, rendered from the hookspec docstrings.

The docstrings in :mod:`bridge.hookspecs` are the one source (as pytest's hookspec.py is
for its docs): ``python -m bridge.hookref`` rewrites the part of docs/plugins.md between
the two markers below, and tests/test_hook_docs.py fails when the page and the
docstrings differ.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from bridge import hookspecs

BEGIN = "<!-- hook reference: rendered from bridge/hookspecs.py by `python -m bridge.hookref` -->"
END = "<!-- end of the rendered hook reference -->"

_SECTIONS = ("Called:", "Arguments:", "Returns:", "Errors:")


def _markdown(text: str) -> str:
    """reST roles and literals as Markdown: ``x`` and :class:`~a.b.X` become `x`, `X`."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([\w]+)`", r"`\1`", text)
    text = re.sub(r"``(.+?)``", r"`\1`", text, flags=re.DOTALL)
    return " ".join(text.split())


def _sections(doc: str) -> dict[str, str]:
    """The docstring's summary and its Called / Arguments / Returns / Errors paragraphs."""
    found: dict[str, str] = {}
    key = "summary"
    for paragraph in re.split(r"\n\s*\n", doc.strip()):
        head = next((s for s in _SECTIONS if paragraph.startswith(s)), None)
        if head is not None:
            key = head.rstrip(":")
            paragraph = paragraph[len(head):]
        found[key] = (found[key] + "\n\n" + paragraph) if key in found else paragraph
    return found


def _arguments(text: str) -> dict[str, str]:
    """``name: meaning`` lines (a meaning may continue on more indented lines)."""
    args: dict[str, str] = {}
    name = None
    for line in text.strip("\n").splitlines():
        match = re.match(r"^\s*(\w+): (.*)$", line)
        if match and (name is None or not line.startswith(" " * 8)):
            name = match.group(1)
            args[name] = match.group(2)
        elif name is not None:
            args[name] += " " + line.strip()
    return args


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _type(annotation: str, argument: str) -> str:
    if argument == "config":
        return "your model or `None`"
    return f"`{annotation}`"


def render_hook(name: str) -> str:
    spec = getattr(hookspecs, name)
    doc = _sections(inspect.getdoc(spec) or "")
    args = hookspecs.hook_arguments(name)
    lines = [f"### `{name}({', '.join(args)})`", "", _markdown(doc["summary"]), ""]
    lines += [f"*Called {_markdown(doc.get('Called', ''))}*", ""]
    if args:
        described = _arguments(doc.get("Arguments", ""))
        lines += ["| argument | type | meaning |", "|---|---|---|"]
        lines += [f"| `{a}` | {_cell(_type(spec.__annotations__.get(a, 'Any'), a))} | "
                  f"{_cell(_markdown(described.get(a, '')))} |" for a in args]
    else:
        lines.append("No arguments.")
    lines += ["", f"**Returns:** {_markdown(doc.get('Returns', ''))}", "",
              f"**Errors:** {_markdown(doc.get('Errors', ''))}", ""]
    return "\n".join(lines)


def render_reference() -> str:
    """Every hook's section, in the order of bridge/hookspecs.py."""
    return "\n".join(render_hook(name) for name in hookspecs.hook_names())


def rewrite(doc: Path) -> bool:
    """Put the rendered reference between the markers of ``doc``; True when it changed."""
    text = doc.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    new = text[:start] + "\n\n" + render_reference() + "\n" + text[end:]
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str]) -> int:
    doc = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
    print(f"{doc}: {'rewritten' if rewrite(doc) else 'up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
