"""The default profile and how a regency's ``[workflow]`` section is merged over it.

Merge rules (``merge_profile``), applied at every depth:

1. Tables merge key by key: a key the regency writes replaces or extends the default's
   value of that key; keys it does not write keep the default's value.
2. Anything that is not a table -- strings, numbers, booleans, dates, arrays and arrays of
   tables (``from``, ``roles``, ``steps``, ``levels``, ...) -- replaces the default's value
   whole. To add one stage to a transition's ``from``, write the complete list.
3. ``{ drop = true }`` (a table holding only ``drop = true``) removes the default's entry of
   that name: ``[workflow.stages.classified] drop = true`` deletes the stage (every
   transition naming it must then be changed too, or validation says which one does).
4. A table with ``replace = true`` replaces the default's table whole instead of merging
   into it (``replace`` itself is not kept): ``[workflow.classes] replace = true`` followed
   by the regency's own classes discards the default classes.

The merged mapping is then validated as one profile (:func:`profile.parse_profile`), so
every error names the key path in the merged ``[workflow]`` section.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from bridge.workflow.errors import WorkflowProfileError
from bridge.workflow.profile import ROOT, Workflow, parse_profile

DEFAULT_PROFILE_FILE = "default_profile.toml"
DROP = "drop"
REPLACE = "replace"


@lru_cache(maxsize=1)
def _default_text() -> str:
    return resources.files("bridge.workflow").joinpath(DEFAULT_PROFILE_FILE).read_text(
        encoding="utf-8")


def default_profile_data() -> dict[str, Any]:
    """The default ``[workflow]`` section as a fresh mapping (safe to modify)."""
    data = tomllib.loads(_default_text())
    return dict(data[ROOT])


def merge_profile(base: Mapping[str, Any], override: Mapping[str, Any], *,
                  path: str = ROOT) -> dict[str, Any]:
    """``override`` merged over ``base`` (neither is modified); see the module docstring."""
    if override.get(REPLACE) is True:
        return _strip_markers(override, path)
    result: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        here = f"{path}.{key}"
        if key == REPLACE:
            if value is not True:
                raise WorkflowProfileError(here, "replace may only be true")
            continue
        if key == DROP:
            raise WorkflowProfileError(here, "drop = true goes inside the entry to remove, "
                                       "e.g. [workflow.stages.<name>] drop = true")
        if isinstance(value, Mapping):
            if DROP in value:
                if value[DROP] is not True or len(value) != 1:
                    raise WorkflowProfileError(f"{here}.{DROP}", "write the entry as "
                                               "{ drop = true } and nothing else")
                if key not in result:
                    raise WorkflowProfileError(here, "drop = true names nothing in the "
                                               "default profile")
                del result[key]
                continue
            current = result.get(key)
            if isinstance(current, Mapping):
                result[key] = merge_profile(current, value, path=here)
            else:
                result[key] = _strip_markers(value, here)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _strip_markers(value: Mapping[str, Any], path: str) -> dict[str, Any]:
    # A table with nothing beneath it to merge into: markers have no meaning inside it
    # except a nested drop, which would silently do nothing, so it is refused.
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == REPLACE:
            continue
        if isinstance(item, Mapping):
            if DROP in item:
                raise WorkflowProfileError(f"{path}.{key}", "drop = true names nothing in "
                                           "the default profile")
            out[key] = _strip_markers(item, f"{path}.{key}")
        else:
            out[key] = copy.deepcopy(item)
    return out


def build_workflow(section: Mapping[str, Any] | None = None) -> Workflow:
    """The workflow of a regency: its ``[workflow]`` section merged over the default.

    ``section`` is the section's content (``settings.section("workflow")``); ``None`` or
    empty gives the default workflow. Raises :class:`WorkflowProfileError`.
    """
    if not section:
        return default_workflow()
    merged = merge_profile(default_profile_data(), section)
    return Workflow(parse_profile(merged))


@lru_cache(maxsize=1)
def default_workflow() -> Workflow:
    """The default workflow, parsed once (a :class:`Workflow` is immutable)."""
    return Workflow(parse_profile(default_profile_data()))
