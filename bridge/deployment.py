"""Reading a deployment file: a path or a shipped name, and the profile it builds on.

``--config`` takes a file path or the name of a shipped config (``demo``, ``klaten``...);
a bare name (no ``/``, no ``.toml``) means the shipped one. A deployment file may start
from a regency profile with a top-level ``profile`` key: ``profile = "klaten"`` names a
shipped profile, ``profile = "profiles/mykab.toml"`` a file (relative to the deployment
file). The deployment's own keys are then merged over the profile's:

- tables merge key by key (``[lapor] institution_id`` replaces only that key);
- everything else -- strings, numbers, arrays, arrays of tables such as ``[[opds]]`` --
  replaces the profile's value whole;
- a table holding ``drop`` or ``replace`` (the workflow's markers) replaces the profile's
  table whole, so the workflow merge over the default profile still sees the marker.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError
from bridge.resources import DEMO, profile_names, shipped_config, shipped_configs

#: The config used when neither ``--config`` nor ``$LAPOR_BRIDGE_CONFIG`` names one.
DEFAULT_CONFIG = DEMO
PROFILE_KEY = "profile"
_MAX_DEPTH = 8


class DeploymentData:
    """A deployment file's data with its profile merged in, and where it came from."""

    def __init__(self, data: dict[str, Any], source: str, base_dir: Path | None) -> None:
        self.data = data
        self.source = source
        #: Folder that relative paths in the file (``secrets_file``) are relative to.
        self.base_dir = base_dir


def is_shipped_name(ref: str) -> bool:
    """True when ``ref`` is a bare name rather than a path."""
    return "/" not in ref and os.sep not in ref and not ref.endswith(".toml")


def read_deployment(ref: str | os.PathLike[str]) -> DeploymentData:
    """Read the file or shipped config ``ref`` and merge it over its ``profile``."""
    return _read(str(ref), None, [])


def _read(ref: str, relative_to: Path | None, chain: list[str]) -> DeploymentData:
    data, source, base_dir = _load(ref, relative_to, chain[-1] if chain else None)
    if source in chain:
        raise ConfigError(chain[-1], PROFILE_KEY, f"{ref!r} builds on this file again "
                          "(a profile loop)")
    if PROFILE_KEY not in data:
        return DeploymentData(data, source, base_dir)
    profile = data.pop(PROFILE_KEY)
    if not isinstance(profile, str) or not profile:
        raise ConfigError(source, PROFILE_KEY, "expected the name of a shipped profile "
                          f"({', '.join(profile_names())}) or the path of a TOML file")
    chain = [*chain, source]
    if len(chain) > _MAX_DEPTH:
        raise ConfigError(source, PROFILE_KEY, f"profiles nested more than {_MAX_DEPTH} deep")
    base = _read(profile, base_dir, chain)
    return DeploymentData(merge_over_profile(base.data, data), source, base_dir)


def _load(ref: str, relative_to: Path | None,
          named_by: str | None) -> tuple[dict[str, Any], str, Path | None]:
    where = (named_by, PROFILE_KEY) if named_by else (ref, "(file)")
    if is_shipped_name(ref):
        shipped = shipped_config(ref)
        if shipped is not None:
            return _parse(shipped, str(shipped)), str(shipped), None
        if named_by is not None:
            raise ConfigError(*where, f"no shipped profile {ref!r}; shipped: "
                              f"{', '.join(profile_names())} (or give a file path)")
    path = Path(ref)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    try:
        data = _parse(path, str(path))
    except FileNotFoundError:
        hint = ""
        if is_shipped_name(ref):
            hint = f" (nor a shipped config: {', '.join(shipped_configs())})"
        if named_by is not None:
            raise ConfigError(*where, f"profile file not found: {path}{hint}") from None
        raise ConfigError(path, "(file)", f"file not found{hint}") from None
    except IsADirectoryError:
        raise ConfigError(path, "(file)", "is a directory, expected a TOML file") from None
    return data, str(path), path.parent


def _parse(file: Traversable | Path, source: str) -> dict[str, Any]:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(file)", f"not valid TOML: {exc}") from None


def merge_over_profile(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` (the deployment) merged over ``base`` (the profile); see the module doc."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = result.get(key)
        if (isinstance(value, Mapping) and isinstance(current, Mapping)
                and not ({"drop", "replace"} & set(value))):
            result[key] = merge_over_profile(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result
