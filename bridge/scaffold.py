"""``lapor-bridge plugin new NAME``: a ready-to-install plugin package to start from.

The package has a pyproject with the ``lapor_bridge`` entry point, one hook
(``classify_case`` with its own config section), a README and tests using the test kit;
``pip install . && pytest`` passes as generated.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from bridge.errors import BridgeError

#: Read with importlib.resources wherever the package is installed.
TEMPLATES = jinja2.PackageLoader("bridge", "scaffold_template")

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$")


class ScaffoldError(BridgeError):
    """The name is not usable or the destination already exists."""


def plugin_names(name: str) -> dict[str, str]:
    """The names derived from ``name``: distribution, package, entry point, config section."""
    if not _NAME.fullmatch(name) or len(name) > 40:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower-case letters, digits, '-' or '_', "
            "starting with a letter (e.g. 'klaten-rules'), at most 40 characters")
    under = name.replace("-", "_")
    return {
        "name": name,
        "plugin_name": under,
        "section": under,
        "package": f"lapor_bridge_{under}",
        "dist_name": f"lapor-bridge-{under.replace('_', '-')}",
    }


def scaffold_plugin(name: str, dest_dir: str | Path) -> Path:
    """Create the plugin package ``lapor-bridge-<name>`` in ``dest_dir``; returns its path.

    Refuses to write into an existing directory, so nothing is ever overwritten.
    """
    names = plugin_names(name)
    root = Path(dest_dir) / names["dist_name"]
    if root.exists():
        raise ScaffoldError(f"{root} already exists; choose another name or directory")
    env = jinja2.Environment(loader=TEMPLATES,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    files = {
        "pyproject.toml": "pyproject.toml.j2",
        "README.md": "README.md.j2",
        f"{names['package']}/__init__.py": "__init__.py.j2",
        f"{names['package']}/plugin.py": "plugin.py.j2",
        "tests/test_plugin.py": "test_plugin.py.j2",
    }
    rendered = {path: env.get_template(template).render(names)
                for path, template in files.items()}
    for path, text in rendered.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


__all__ = ["ScaffoldError", "plugin_names", "scaffold_plugin"]
