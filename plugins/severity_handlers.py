"""Severity classes with their handler sets (seed 002, DPM-PTSP Kota Prabumulih).

Implements ``classify_case`` and ``route_case``:

- **classify**: the first class (in ``order``, gravest first) one of whose keywords
  appears in the case's title, content or category is the suggested class; staff confirm
  it (the profile decides who may classify).
- **route**: a classified case is ours, handled by its class's set of handlers: the
  ``lead`` unit gets the disposition and every other handler a copy (``tembusan``). A
  handler may name the place of the complaint: ``{kecamatan}``, ``{kelurahan}`` and
  ``{desa}`` are read from the case's location (``"Kel. Gunung Ibul, Kec. Prabumulih
  Timur"``), so the apparatus of that kecamatan and kelurahan are pulled in. A handler
  whose place the location does not name is replaced by its ``fallback`` text, so that
  nobody is silently left out.

Configuration::

    [plugins]
    enable = ["severity_handlers"]

    [severity_handlers]
    order = ["berat", "sedang", "ringan"]

    [severity_handlers.classes.ringan]
    keywords = ["waktu", "biaya", "tarif"]
    lead = "Seksi Pengaduan dan Informasi Layanan"
    handlers = ["Petugas Loket"]

    [severity_handlers.classes.sedang]
    keywords = ["limbah", "bau", "bising", "debu"]
    lead = "Seksi Pengaduan dan Informasi Layanan"
    handlers = ["Seksi Kebijakan dan Advokasi Layanan", "Tim Teknis Perizinan",
                "Aparatur Kecamatan {kecamatan}", "Aparatur Kelurahan {kelurahan}"]
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bridge.domain import (
    CaseSnapshot,
    Classification,
    RoutingDecision,
    location_places,
)
from bridge.hookspecs import declare_section, hookimpl

__version__ = "1.0"

_FIELD = re.compile(r"\{(kecamatan|kelurahan|desa)\}")


class ClassRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    #: Words that put a case in this class (substring of title, content or category).
    keywords: list[str] = Field(default_factory=list)
    #: The unit that receives the disposition.
    lead: str = Field(min_length=1)
    #: Everyone else who takes part; may use {kecamatan}, {kelurahan}, {desa}.
    handlers: list[str] = Field(default_factory=list)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: dict[str, ClassRule] = Field(min_length=1)
    #: Order in which classes are tried when classifying (gravest first).
    order: list[str] = Field(default_factory=list)
    #: Text used for a place the case's location does not name.
    fallback: str = "{role} (lokasi pengaduan belum jelas)"

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name in self.order:
            if name not in self.classes:
                raise ValueError(f"order names unknown class {name!r}; known: "
                                 f"{', '.join(sorted(self.classes))}")
        return self

    def ordered(self) -> list[str]:
        rest = [name for name in self.classes if name not in self.order]
        return [*self.order, *rest]


def handler_set(rule: ClassRule, location: str | None, fallback: str) -> list[str]:
    """The class's handlers with the places of the complaint filled in, lead first."""
    where = location_places(location)
    out: list[str] = [rule.lead]
    for handler in rule.handlers:
        missing = [m for m in _FIELD.findall(handler) if m not in where]
        if missing:
            role = _FIELD.sub("", handler).strip()
            text = fallback.format(role=role)
        else:
            text = handler.format(**where)
        if text not in out:
            out.append(text)
    return out


config_section = declare_section("severity_handlers", Config)


@hookimpl
def classify_case(case: CaseSnapshot, severities: tuple[str, ...],
                  config: Config) -> Classification | None:
    text = f"{case.title}\n{case.content}\n{case.category or ''}".lower()
    for name in config.ordered():
        if name not in severities:
            continue
        for keyword in config.classes[name].keywords:
            if keyword.lower() in text:
                return Classification(name, f"memuat kata kunci '{keyword}'")
    return None


@hookimpl
def route_case(case: CaseSnapshot, config: Config) -> RoutingDecision | None:
    rule = config.classes.get(case.severity or "")
    if rule is None:
        return None  # not classified yet: no handler set to name
    team = handler_set(rule, case.location, config.fallback)
    label = rule.label or f"pengaduan {case.severity}"
    return RoutingDecision(ours=True, unit=team[0], tembusan=team[1:],
                           reason=f"Penanganan {label} sesuai SOP")
