"""A Pemda's bodies: one deployment file, one queue per OPD (``[[bodies]]``).

A deployment file may declare several bodies, each an institution on LAPOR! with its own
queue::

    [[bodies]]
    code = "DLH"
    name = "Dinas Lingkungan Hidup"
    institution_id = 52120
    profile = "situbondo"         # its SOP: a shipped profile or a TOML file (workflow only)
    secrets = "DLH"               # LAPOR_BRIDGE_DLH_BEARER/_TOKEN or [bodies.DLH] in the
                                  # secrets file

Each body becomes a complete :class:`~bridge.config.Settings`, exactly what a one-body
deployment is today: the deployment's keys, then the body's own over them. So
``Runtime(body.settings)`` needs nothing new. What a body changes:

- ``[regency]``: ``code`` and ``name`` become the body's (register numbers, documents and
  notices name the body); ``register_format`` when the body sets one;
- ``[lapor]``: ``institution_id``, ``api_profile``, ``user_id`` and any key of a
  ``[bodies.lapor]`` table; its bearer and token by secrets name;
- ``[workflow]``: the ``profile``'s workflow replaces the deployment's, then an inline
  ``[bodies.workflow]`` is merged over it (as a deployment's is over its profile);
- ``[calendar]``, ``[documents]``, ``[tracking]``, ``[outbox]``, ``[reports]``: a body's
  table is merged over the deployment's;
- ``[[opds]]``: the body's own list, or the deployment's without the body itself; the
  other bodies are added (``kind = "opd"``) when not listed, so a forward can reach them;
- the store: on PostgreSQL the schema ``body_<code>`` of the one database, on SQLite a
  file of its own beside the deployment's (``bridge.<code>.db`` beside ``bridge.db``).

A deployment without ``[[bodies]]`` is one body: its settings unchanged, its database as
today.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.config import (
    ConfigError,
    Settings,
    describe_validation_error,
    secrets_name,
)
from bridge.deployment import merge_over_profile, read_deployment

#: Top-level tables a body may carry, merged over the deployment's own.
BODY_TABLES = ("lapor", "calendar", "documents", "tracking", "outbox", "reports")
KEY = "bodies"


class Body(BaseModel):
    """One ``[[bodies]]`` entry, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")
    name: str = Field(min_length=1)
    institution_id: int = Field(ge=1)
    user_id: int | None = Field(default=None, ge=1)
    api_profile: str | None = None
    #: Its SOP: a shipped profile's name or a TOML file (relative to the deployment file);
    #: only the profile's ``[workflow]`` is taken.
    profile: str | None = None
    register_format: str | None = None
    #: Name its bearer and token are found under; the code when not given.
    secrets: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    workflow: dict[str, Any] | None = None
    calendar: dict[str, Any] | None = None
    lapor: dict[str, Any] | None = None
    documents: dict[str, Any] | None = None
    tracking: dict[str, Any] | None = None
    outbox: dict[str, Any] | None = None
    reports: dict[str, Any] | None = None
    opds: list[dict[str, Any]] | None = None

    @property
    def key(self) -> str:
        """The code as schemas and file names carry it: ``Dinas-Kes`` -> ``dinas_kes``."""
        return body_key(self.code)


def body_key(code: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", code.lower())


@dataclass(frozen=True)
class BodySettings:
    """One body of the deployment and its complete settings."""

    code: str
    name: str
    institution_id: int
    settings: Settings

    @property
    def key(self) -> str:
        return body_key(self.code)


def has_bodies(settings: Settings) -> bool:
    """True when the deployment declares ``[[bodies]]`` (a Pemda), not one body."""
    return bool(settings.bodies)


def body_specs(settings: Settings) -> list[Body]:
    """The validated ``[[bodies]]`` entries; ConfigError for a bad one or a repeat."""
    specs: list[Body] = []
    for i, raw in enumerate(settings.bodies):
        try:
            specs.append(Body.model_validate(raw))
        except ValidationError as exc:
            loc, problem = describe_validation_error(exc)
            raise ConfigError(settings.source, f"{KEY}[{i}].{loc}" if loc else f"{KEY}[{i}]",
                              problem) from None
    _check_unique(settings, specs)
    return specs


def _check_unique(settings: Settings, specs: list[Body]) -> None:
    by_key: dict[str, Body] = {}
    by_institution: dict[int, Body] = {}
    for i, body in enumerate(specs):
        twin = by_key.get(body.key)
        if twin is not None:
            raise ConfigError(settings.source, f"{KEY}[{i}].code",
                              f"body code {body.code!r} is also body {twin.code!r}'s "
                              "(codes must differ, ignoring case, - and _)")
        twin = by_institution.get(body.institution_id)
        if twin is not None:
            raise ConfigError(settings.source, f"{KEY}[{i}].institution_id",
                              f"institution id {body.institution_id} is also body "
                              f"{twin.code!r}'s (each body is its own institution on LAPOR!)")
        by_key[body.key] = body
        by_institution[body.institution_id] = body


def bodies_of(settings: Settings) -> list[BodySettings]:
    """Each body of the deployment with its complete settings (see the module doc).

    A deployment without ``[[bodies]]`` is one body: ``settings`` itself. Raises
    :class:`ConfigError` with one line for a bad body."""
    if not has_bodies(settings):
        r = settings.regency
        return [BodySettings(r.code, r.name, settings.lapor.institution_id, settings)]
    specs = body_specs(settings)
    shared = _shared_data(settings)
    return [BodySettings(spec.code, spec.name, spec.institution_id,
                         _body_settings(settings, shared, spec, specs))
            for spec in specs]


def body_of(settings: Settings, code: str | None) -> BodySettings:
    """The body ``code`` (any case), or the only body when ``code`` is None.

    ConfigError when there is no such body, or when there are several and none is named."""
    bodies = bodies_of(settings)
    codes = ", ".join(b.code for b in bodies)
    if code is None:
        if len(bodies) == 1:
            return bodies[0]
        raise ConfigError(settings.source, KEY, f"{len(bodies)} bodies ({codes}): name one "
                          "with --body CODE")
    for body in bodies:
        if body.key == body_key(code):
            return body
    raise ConfigError(settings.source, KEY, f"no body {code!r}; bodies: {codes}")


def _shared_data(settings: Settings) -> dict[str, Any]:
    # Only what the file set (exclude_unset): a body's profile and tables then see the
    # deployment's choices, not a copy of every default.
    return settings.model_dump(mode="python", by_alias=True, exclude_unset=True,
                               exclude={"secrets", "source", KEY})


def _body_settings(settings: Settings, shared: Mapping[str, Any], spec: Body,
                   specs: list[Body]) -> Settings:
    data = merge_over_profile(shared, {})
    where = f"{KEY}[{specs.index(spec)}]"
    data["regency"] = {**data.get("regency", {}), "code": spec.code, "name": spec.name}
    if spec.register_format is not None:
        data["regency"]["register_format"] = spec.register_format
    lapor: dict[str, Any] = {"institution_id": spec.institution_id}
    if spec.user_id is not None:
        lapor["user_id"] = spec.user_id
    if spec.api_profile is not None:
        lapor["api_profile"] = _beside(settings, spec.api_profile)
    data["lapor"] = merge_over_profile(data.get("lapor", {}), {**(spec.lapor or {}), **lapor})
    if spec.profile is not None:
        data["workflow"] = _profile_workflow(settings, spec.profile, f"{where}.profile")
    for name in ("workflow", *BODY_TABLES[1:]):
        own = getattr(spec, name)
        if own is not None:
            data[name] = merge_over_profile(data.get(name, {}), own)
    data["opds"] = _opds(settings, spec, specs, where)
    data["database"] = _database(settings, spec)
    secrets = _secrets(settings, spec, where)
    try:
        # The deployment file's own path: paths in it are relative to its folder.
        return Settings.model_validate({**data, "secrets": secrets,
                                        "source": settings.source})
    except ValidationError as exc:
        loc, problem = describe_validation_error(exc)
        raise ConfigError(settings.source, f"{where} ({spec.code}): {loc or '(root)'}",
                          problem) from None


def _beside(settings: Settings, ref: str) -> str:
    # A file named in the deployment file is found beside it, as the deployment's own are.
    if ref.endswith(".toml") and not Path(ref).is_absolute():
        base = Path(settings.source).parent
        if (base / ref).is_file():
            return str(base / ref)
    return ref


def _profile_workflow(settings: Settings, ref: str, key: str) -> dict[str, Any]:
    try:
        found = read_deployment(_beside(settings, ref))
    except ConfigError as exc:
        raise ConfigError(settings.source, key, exc.problem) from None
    workflow = found.data.get("workflow")
    if not isinstance(workflow, Mapping):
        raise ConfigError(settings.source, key, f"{ref!r} has no [workflow] to take")
    return dict(workflow)


def _opds(settings: Settings, spec: Body, specs: list[Body], where: str) -> list[dict[str, Any]]:
    if spec.opds is not None:
        opds = [dict(o) for o in spec.opds]
        for i, opd in enumerate(opds):
            if _is_itself(opd, spec):
                raise ConfigError(settings.source, f"{where}.opds[{i}]",
                                  f"a forward to the body's own code {spec.code!r}")
    else:
        # The Pemda's list names every OPD, this one too: a body does not forward to itself.
        opds = [o.model_dump(exclude_unset=True) for o in settings.opds
                if not _is_itself(o.model_dump(), spec)]
    listed = {body_key(str(o.get("code", ""))) for o in opds}
    for other in specs:
        if other is not spec and other.key not in listed:
            opds.append({"code": other.code, "name": other.name,
                         "lapor_institution_id": other.institution_id, "kind": "opd"})
    return opds


def _is_itself(opd: Mapping[str, Any], spec: Body) -> bool:
    return (body_key(str(opd.get("code", ""))) == spec.key
            or opd.get("lapor_institution_id") == spec.institution_id)


def _database(settings: Settings, spec: Body) -> dict[str, Any]:
    db = settings.database
    data: dict[str, Any] = {"url": db.url, "echo": db.echo}
    if db.url.startswith("postgresql"):
        data["schema"] = f"body_{spec.key}"
    else:
        try:
            data["url"] = sqlite_body_url(db.url, spec.key)
        except ValueError as exc:
            raise ConfigError(settings.source, "database.url", str(exc)) from None
    return data


def sqlite_body_url(url: str, key: str) -> str:
    """The body's own SQLite file beside the deployment's: ``x/bridge.db`` -> ``x/bridge.dlh.db``."""
    prefix, _, database = url.partition(":///")
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError(f"a SQLite URL naming a file is needed for bodies, got {url!r}")
    path = PurePosixPath(database)
    name = f"{path.stem}.{key}{path.suffix or '.db'}"
    return f"{prefix}:///{path.with_name(name)}"


def _secrets(settings: Settings, spec: Body, where: str) -> dict[str, Any]:
    shared = settings.secrets
    out: dict[str, Any] = {"database_password": shared.database_password}
    name = secrets_name(spec.secrets or spec.code)
    own = shared.bodies.get(name)
    if own is not None and (own.bearer or own.token):
        out.update(bearer=own.bearer, token=own.token)
    elif spec.secrets is not None:
        raise ConfigError(settings.source, f"{where}.secrets",
                          f"no secrets named {spec.secrets!r}: set LAPOR_BRIDGE_{name}_BEARER "
                          f"and LAPOR_BRIDGE_{name}_TOKEN, or a [bodies.{spec.secrets}] table "
                          "in the secrets file")
    else:
        # No name given and none found under the code: the deployment's own credentials
        # (one LAPOR! account for the Pemda, or a sandbox).
        out.update(bearer=shared.bearer, token=shared.token)
    return out


def check_bodies(settings: Settings) -> list[BodySettings]:
    """What ``check-config`` adds for a Pemda: every body builds (codes and institution
    ids unique, secrets found, no forward to itself). Raises :class:`ConfigError`."""
    return bodies_of(settings)


__all__ = [
    "KEY",
    "Body",
    "BodySettings",
    "bodies_of",
    "body_key",
    "body_of",
    "body_specs",
    "check_bodies",
    "has_bodies",
    "sqlite_body_url",
]
