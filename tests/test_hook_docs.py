"""docs/plugins.md documents every hook and every argument, and its tutorial works."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HEADING = re.compile(r"^### `(\w+)\(([^)]*)\)`\s*$", re.MULTILINE)


def reference() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Hook reference")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def sections() -> dict[str, tuple[list[str], str]]:
    """hook name -> (arguments in the heading, text of its section)."""
    text = reference()
    found: dict[str, tuple[list[str], str]] = {}
    matches = list(HEADING.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        args = [a.strip() for a in match.group(2).split(",") if a.strip()]
        found[match.group(1)] = (args, text[match.end():end])
    return found


@pytest.mark.parametrize("hook", hookspecs.hook_names())
def test_every_hook_and_argument_is_documented(hook: str) -> None:
    documented = sections()
    assert hook in documented, f"hook {hook} has no '### `{hook}(...)`' section in {DOC.name}"
    args, body = documented[hook]
    expected = hookspecs.hook_arguments(hook)
    assert args == expected, f"{hook}: heading lists {args}, the hookspec takes {expected}"
    for arg in expected:
        assert re.search(rf"^\| `{arg}` \|", body, re.MULTILINE), \
            f"{hook}: argument {arg!r} has no row in the argument table"
    assert "**Returns:**" in body, f"{hook}: return value not documented"
    assert "**Errors:**" in body, f"{hook}: behaviour on errors not documented"


def test_docs_describe_no_hook_that_does_not_exist() -> None:
    extra = set(sections()) - set(hookspecs.hook_names())
    assert not extra, f"documented but not specified: {sorted(extra)}"


@pytest.mark.parametrize("hook", hookspecs.hook_names())
def test_hookspec_docstrings_say_when_what_and_errors(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    for word in ("Called:", "Returns:", "Errors:"):
        assert word in doc, f"hookspec {hook} docstring lacks {word!r}"
    for arg in hookspecs.hook_arguments(hook):
        assert f"{arg}:" in doc, f"hookspec {hook} docstring does not describe {arg!r}"


def code_after(text: str, heading: str) -> str:
    start = text.index(heading)
    match = re.compile(r"```python\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


def test_tutorial_code_passes_its_own_tests(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    (tmp_path / "kab_contoh.py").write_text(code_after(text, "### 1. The module"))
    (tmp_path / "test_kab_contoh.py").write_text(code_after(text, "### 2. A test, offline"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_kab_contoh.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_reference_is_the_rendered_hookspec_docstrings(tmp_path: Path) -> None:
    from bridge.hookref import rewrite

    copy = tmp_path / "plugins.md"
    copy.write_text(DOC.read_text(encoding="utf-8"), encoding="utf-8")
    assert not rewrite(copy), (
        "docs/plugins.md's hook reference differs from the hookspec docstrings: "
        "run `python -m bridge.hookref`")
