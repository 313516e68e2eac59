"""Every repository path, ``lapor-bridge`` command and option that README.md and docs/*.md
quote exists (issue 14): paths are files or folders of the repository, commands and
options are accepted by the click app, and the schema revision quoted is the current one."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from bridge.cli import main
from bridge.store.migrate import head_revision

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Top-level names of the repository: a quoted path starting with one is a repo path.
TOP = ("bridge/", "plugins/", "config/", "tests/", "docs/", ".ci/", "shared/")


def _text(path: Path) -> str:
    return path.read_text("utf-8")


def quoted_paths(text: str) -> list[str]:
    found: list[str] = []
    for token in re.findall(r"`([^`\n]+)`", text) + re.findall(r"\]\(([^)\s#]+)", text):
        for part in token.split():
            if part.endswith(":"):
                continue  # a file named in a quoted error message (`config/x.toml: key: ...`)
            part = part.strip("'\",;()")
            if part.startswith(TOP) or part.startswith("/work/") or "/venv/" in part:
                found.append(part)
    return found


def _resolve(path: str, doc: Path) -> bool:
    if "<" in path or "*" in path or "{" in path:
        parent = path.split("<")[0].split("*")[0].split("{")[0].rsplit("/", 1)[0]
        return (ROOT / parent).exists()
    path = path.split("::")[0]
    return (ROOT / path).exists() or (doc.parent / path).exists()


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_quoted_paths_exist(doc: Path) -> None:
    bad = [p for p in quoted_paths(_text(doc))
           if p.startswith(("shared/", "/work/")) or "/venv/" in p or not _resolve(p, doc)]
    assert bad == []


def command_lines(text: str) -> list[str]:
    """``lapor-bridge ...`` as quoted inline and as lines of code blocks."""
    lines = re.findall(r"`((?:\.venv/bin/)?lapor-bridge(?:\s[^`]*)?)`", text)
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            for piece in re.split(r"&&|\||;", line):
                piece = piece.strip().removeprefix("$ ")
                # "lapor-bridge bench: sizes ..." is the bench's printed output, not a command.
                if re.match(r"(\S*/)?lapor-bridge(\s|$)", piece) and not re.match(
                        r"(\S*/)?lapor-bridge \S+:", piece):
                    lines.append(piece)
    return lines


def _options(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names | {"--help", "-h"}


def check_command(line: str) -> str | None:
    """``None`` when the click app accepts the command and its options; else why not."""
    line = line.split(" #")[0].strip()
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    words = words[1:]  # lapor-bridge
    command: click.Command = main
    options = _options(main)
    for word in words:
        if word in ("...", "…"):
            continue
        alternatives = [w for w in word.strip("[]").split("|") if w]
        for alt in alternatives:
            if alt.startswith("-"):
                name = alt.split("=")[0]
                if name not in options:
                    return f"{line!r}: {command.name} has no option {name}"
            elif isinstance(command, click.Group) and alt in command.commands:
                command = command.commands[alt]
                options = options | _options(command)
            elif isinstance(command, click.Group) and alt == alternatives[0] \
                    and not command.invoke_without_command:
                return f"{line!r}: {command.name} has no command {alt}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_quoted_commands_and_options_exist(doc: Path) -> None:
    problems = [p for p in map(check_command, command_lines(_text(doc))) if p]
    assert problems == []


def test_the_checker_can_fail() -> None:
    assert check_command("lapor-bridge queue --stagee x") is not None
    assert check_command("lapor-bridge cases show 1") is not None
    assert check_command("lapor-bridge case followup 1 --text x --role analis") is None
    assert quoted_paths("see `shared/seeds/` and `config/nope.toml`") == [
        "shared/seeds/", "config/nope.toml"]


def test_quoted_schema_revision_is_current() -> None:
    head = head_revision()
    for doc in DOCS:
        for revision in re.findall(r"schema at revision (\d{4})", _text(doc)):
            assert revision == head, doc.name
