"""Reference plugin: route cases by category, keywords and location, from a table in config.

Implements ``route_case`` (kewenangan: ours -> a unit; not ours -> an OPD of the regency or
a LAPOR! institution, with tembusan). The first rule whose criteria all match wins; a rule
criterion given as a list matches when any entry matches. When no rule matches the plugin
answers ``default_unit`` if set, else has no opinion (``None``) and a person decides.

Configuration (Situbondo-like: licensing is ours, pollution goes to DLH)::

    [plugins]
    enable = ["routing_rules"]

    [routing_rules]
    default_unit = "Seksi Penanganan Pengaduan"    # optional

    [[routing_rules.rules]]
    name = "lingkungan"
    categories = ["Lingkungan Hidup"]              # exact, case-insensitive
    keywords = ["limbah", "pencemaran"]            # substring of title or content
    opd = "DLH"                                    # exactly one of unit / opd / body_id;
                                                   # opd: an [[opds]] code (or its name)
    tembusan = ["pelapor", "Camat {kecamatan}"]    # {kecamatan} {kelurahan} {desa}
    reason = "Pengawasan lingkungan adalah kewenangan DLH"

    [[routing_rules.rules]]
    name = "perizinan"
    categories = ["Perizinan"]
    unit = "Bidang Pelayanan Perizinan"

Other criteria: ``locations`` (substring of the case's location, e.g. ``"Kec. Tengah"``)
and ``severities`` (the case's class, e.g. ``["berat"]``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bridge.domain import CaseSnapshot, RoutingDecision, location_places
from bridge.hookspecs import declare_section, hookimpl

__version__ = "1.0"



class Rule(BaseModel):
    # Frozen: `lowered` keeps the words as they were read.
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    categories: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    locations: list[str] = Field(default_factory=list)
    severities: list[str] = Field(default_factory=list)
    unit: str | None = None
    opd: str | None = None
    body_id: int | None = Field(default=None, ge=1)
    tembusan: list[str] = Field(default_factory=list)
    reason: str = ""

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = [t for t in (self.unit, self.opd, self.body_id) if t is not None]
        if len(targets) != 1:
            raise ValueError("give exactly one of unit, opd or body_id")
        if not (self.categories or self.keywords or self.locations or self.severities):
            raise ValueError("give at least one of categories, keywords, locations, severities")
        return self

    @cached_property
    def lowered(self) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
        """The categories, keywords and places as compared (lower case), worked out once:
        a first sync asks every rule about thousands of cases."""
        return (frozenset(c.strip().lower() for c in self.categories),
                tuple(k.lower() for k in self.keywords),
                tuple(loc.lower() for loc in self.locations))

    def matches(self, case: CaseSnapshot) -> bool:
        categories, keywords, locations = self.lowered
        if categories and (case.category or "").strip().lower() not in categories:
            return False
        text = f"{case.title}\n{case.content}".lower()
        if keywords and not any(k in text for k in keywords):
            return False
        location = (case.location or "").lower()
        if locations and not any(loc in location for loc in locations):
            return False
        return not (self.severities and case.severity not in self.severities)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    default_unit: str | None = None
    #: Tembusan added to every forwarding (e.g. the complainant).
    default_tembusan: list[str] = Field(default_factory=lambda: ["pelapor"])


def _tembusan(entries: list[str], case: CaseSnapshot) -> list[str]:
    values = location_places(case.location)
    out: list[str] = []
    for entry in entries:
        try:
            text = entry.format(**values)
        except (KeyError, IndexError, ValueError):
            continue  # the case's location does not name that place: no copy to it
        if text not in out:
            out.append(text)
    return out


config_section = declare_section("routing_rules", Config)


@hookimpl
def route_case(case: CaseSnapshot, config: Config) -> RoutingDecision | None:
    for index, rule in enumerate(config.rules):
        if not rule.matches(case):
            continue
        label = rule.name or f"aturan {index + 1}"
        reason = rule.reason or f"cocok dengan aturan '{label}'"
        if rule.unit is not None:
            return RoutingDecision(ours=True, unit=rule.unit, reason=reason)
        tembusan = _tembusan([*config.default_tembusan, *rule.tembusan], case)
        return RoutingDecision(ours=False, opd=rule.opd, body_id=rule.body_id,
                               tembusan=tembusan, reason=reason)
    if config.default_unit:
        return RoutingDecision(ours=True, unit=config.default_unit,
                               reason="tidak ada aturan yang cocok; unit bawaan")
    return None
