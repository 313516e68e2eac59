"""API profiles: every wire shape of LAPOR! as data.

LAPOR!'s v3 documentation is published only inside its admin panel, so the bridge assumes
nothing in code about where a field sits. A profile names, per endpoint, its method, path,
body encoding and envelope (where the list, the item, the next link and a new id are), and
per field the candidate paths tried in order. Two profiles ship in
``bridge/lapor/profiles/``: ``lapor-v3`` (the default, from public integrations) and
``lapor-flat`` (the bridge's first assumptions). A deployment picks one with
``[lapor] api_profile`` (a shipped name or a TOML file) and overrides any key under
``[lapor.api]``; ``lapor-bridge check-config`` validates the result and
``lapor-bridge probe`` shows which candidate matched on a real server.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.config import ENDPOINT_OF_PATH, ConfigError, LaporSettings, endpoint_path
from bridge.errors import BridgeError

DEFAULT_PROFILE = "lapor-v3"

#: The endpoints the bridge calls, by the name used in profiles.
ENDPOINTS: tuple[str, ...] = (
    "inbox", "complaint", "followups", "institutions", "templates",
    "followup_add", "forward", "create", "upload",
)

#: The fields the bridge reads, per kind of object; a profile maps each to candidates.
FIELD_KINDS: dict[str, tuple[str, ...]] = {
    "complaint": (
        "id", "tracking_id", "title", "content", "status_code", "status_name",
        "disposition_id", "disposition_name", "is_anonymous", "is_secret", "category",
        "location", "channel", "reporter", "attachments", "created_at", "updated_at",
        "status_logs",
    ),
    "followup": (
        "id", "complaint_id", "content", "created_at", "institution_from", "institution_to",
        "is_secret", "attachments",
    ),
    "attachment": ("id", "name", "url", "size", "mime"),
    "reporter": ("name", "email", "phone"),
    "named": ("id", "name"),
    "status_log": ("note", "timestamp"),
    "template": ("id", "code", "name", "content"),
}

_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$|^\d+$")


class ProfileError(BridgeError):
    """A profile that cannot work, with the dotted key and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def split_path(path: str) -> tuple[str, ...]:
    """``"results.data"`` -> ``("results", "data")``; refuses a path that can never match."""
    if not path:
        raise ValueError("an empty path can never match")
    parts = tuple(path.split("."))
    for part in parts:
        if not _SEGMENT.match(part):
            raise ValueError(
                f"{path!r} can never match: segment {part!r} is not a key or a list index")
    return parts


def _check_path(value: str | None) -> str | None:
    if value is not None:
        split_path(value)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Strict):
    """One endpoint: how to call it and where its answer keeps what the bridge needs."""

    method: Literal["GET", "POST"] = "GET"
    #: ``{id}`` stands for the complaint id. An empty path means "not available" (only the
    #: inbox may be switched off this way: the bridge then tracks known ids alone).
    path: str
    encoding: Literal["query", "json", "form", "multipart"] = "query"
    list: str | None = None
    item: str | None = None
    next: str | None = None
    page: str | None = None
    logs: str | None = None
    new_id: tuple[str, ...] = ()
    #: Whether a write's answer must carry the new object's id (else it is read back).
    id_required: bool = True

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str | None:
        return endpoint_path(value, ' (or "" for none)')

    @field_validator("list", "item", "next", "page", "logs")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return _check_path(value)

    @field_validator("new_id")
    @classmethod
    def _candidates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_candidates(value)


def _check_candidates(value: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for path in value:
        split_path(path)
        if path in seen:
            raise ValueError(f"{path!r} is listed twice; the second can never match")
        seen.add(path)
    return value


class Identity(_Strict):
    """What identifies a reporter, removed from anything stored for a hidden report."""

    containers: tuple[str, ...] = ("reporter", "user", "pelapor")
    fields: tuple[str, ...] = ("name", "email", "phone", "nik", "address")
    hide_when: tuple[Literal["anonymous", "secret"], ...] = ("anonymous", "secret")

    @field_validator("containers")
    @classmethod
    def _containers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_candidates(value)


class CreateShape(_Strict):
    """How a local-origin complaint is written for ``create``."""

    #: ``code``: an integer from ``channel_codes`` (else ``default_channel_code``);
    #: ``name``: the local channel name as text.
    channel: Literal["code", "name"] = "code"
    channel_codes: dict[str, int] = Field(default_factory=dict)
    default_channel_code: int | None = None
    #: ``json-string``: upload ids as the text ``"[1,2]"``; ``list``: a JSON list.
    attachments: Literal["json-string", "list"] = "json-string"
    #: How true/false go out in a JSON body.
    flags: Literal["bool", "int"] = "bool"


class ApiProfile(_Strict):
    name: str
    description: str = ""
    extends: str | None = None
    endpoints: dict[str, Endpoint]
    fields: dict[str, dict[str, tuple[str, ...]]]
    identity: Identity = Identity()
    create: CreateShape = CreateShape()
    #: What LAPOR! is told when a case is forwarded to another body of the same
    #: deployment: ``followup`` (a follow-up addressed to the receiver's institution; the
    #: disposition stays with the sender) or ``disposition`` (the ``forward`` endpoint
    #: moves the report's disposition to the receiver, whose inbox then lists it).
    internal_forward: Literal["followup", "disposition"] = "followup"

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, Endpoint]) -> dict[str, Endpoint]:
        unknown = sorted(set(value) - set(ENDPOINTS))
        if unknown:
            raise ValueError(f"unknown endpoint {unknown[0]!r}; expected one of "
                             f"{', '.join(ENDPOINTS)}")
        missing = [name for name in ENDPOINTS if name not in value]
        if missing:
            raise ValueError(f"endpoint {missing[0]!r} is missing")
        for name, endpoint in value.items():
            if not endpoint.path and name != "inbox":
                raise ValueError(f"{name}.path: only the inbox may be switched off")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, dict[str, tuple[str, ...]]]
                ) -> dict[str, dict[str, tuple[str, ...]]]:
        for kind, fields in value.items():
            known = FIELD_KINDS.get(kind)
            if known is None:
                raise ValueError(f"unknown kind {kind!r}; expected one of "
                                 f"{', '.join(FIELD_KINDS)}")
            for name, candidates in fields.items():
                if name not in known:
                    raise ValueError(f"{kind}.{name}: unknown field; expected one of "
                                     f"{', '.join(known)}")
                if not candidates:
                    raise ValueError(f"{kind}.{name}: no candidate path")
                try:
                    _check_candidates(candidates)
                except ValueError as exc:
                    raise ValueError(f"{kind}.{name}: {exc}") from None
        for kind, known in FIELD_KINDS.items():
            missing = [f for f in known if f not in value.get(kind, {})]
            if missing:
                raise ValueError(f"{kind}.{missing[0]}: no candidate paths")
        return value

    def endpoint(self, name: str) -> Endpoint:
        return self.endpoints[name]

    def candidates(self, kind: str, field: str) -> tuple[str, ...]:
        return self.fields[kind][field]


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with the bridge."""
    folder = resources.files("bridge.lapor") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def _read(ref: str) -> dict[str, Any]:
    if ref in shipped_profiles():
        text = (resources.files("bridge.lapor") / "profiles" / f"{ref}.toml").read_text("utf-8")
        where = f"profile {ref}"
    else:
        path = Path(ref)
        if not (ref.endswith(".toml") or "/" in ref):
            raise ProfileError("api_profile", f"unknown profile {ref!r}; shipped: "
                               f"{', '.join(shipped_profiles())}, or a path to a .toml file")
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ProfileError("api_profile", f"cannot read {ref}: {exc.strerror}") from None
        where = ref
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError("api_profile", f"{where} is not valid TOML: {exc}") from None


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: tables merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _raw_profile(ref: str, depth: int = 0) -> dict[str, Any]:
    if depth > 5:
        raise ProfileError("api_profile", f"{ref}: 'extends' goes more than 5 levels deep")
    raw = _read(ref)
    parent = raw.get("extends")
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ProfileError("api_profile.extends", "expected the name of a profile")
    return merge(_raw_profile(parent, depth + 1), raw)


def load_profile(ref: str = DEFAULT_PROFILE,
                 overrides: Mapping[str, Any] | None = None) -> ApiProfile:
    """The profile ``ref`` (shipped name or TOML path) with ``overrides`` laid over it.

    Raises :class:`ProfileError` naming the key and the problem."""
    # Cached by value: every client of a deployment shares one parsed profile.
    return _load(ref, json.dumps(overrides or {}, sort_keys=True))


@lru_cache(maxsize=32)
def _load(ref: str, overrides_json: str) -> ApiProfile:
    raw = merge(_raw_profile(ref), json.loads(overrides_json))
    try:
        return ApiProfile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        problem = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            problem = "unknown key"
        key = f"api.{loc}" if loc else "api"
        raise ProfileError(key, problem) from None


def profile_of(lapor: LaporSettings, source: str = "<memory>") -> ApiProfile:
    """The profile in force for ``[lapor]``: ``api_profile``, then ``api``, then the
    ``*_path`` settings. Raises :class:`ConfigError` naming ``lapor.<key>``."""
    overrides: dict[str, Any] = dict(lapor.api)
    paths = {ENDPOINT_OF_PATH[name]: value for name in ENDPOINT_OF_PATH
             if (value := getattr(lapor, name)) is not None}
    if paths:
        endpoints = dict(overrides.get("endpoints", {}))
        for endpoint, path in paths.items():
            endpoints[endpoint] = {**endpoints.get(endpoint, {}), "path": path}
        overrides["endpoints"] = endpoints
    try:
        return load_profile(lapor.api_profile, overrides)
    except ProfileError as exc:
        raise ConfigError(source, f"lapor.{exc.key}", exc.problem) from None


__all__ = [
    "DEFAULT_PROFILE", "ENDPOINTS", "FIELD_KINDS", "ApiProfile", "CreateShape", "Endpoint",
    "Identity", "ProfileError", "load_profile", "merge", "profile_of", "shipped_profiles", "split_path",
]
