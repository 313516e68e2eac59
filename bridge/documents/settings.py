"""The ``[documents]`` section: kop surat, templates, font, signer and the outgoing-letter
registers. Every key is documented in ``config/example.toml``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bridge.config import Settings, numbering_pattern, register_section, section_settings
from bridge.documents import KINDS

register_section("documents")

_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
#: Fields a register's number format may use.
NUMBER_FIELDS = ("seq", "code", "unit", "month", "month_roman", "year", "kind")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Kop(_Model):
    """The letterhead: lines in capitals at the top, then the address line."""

    lines: list[str] = Field(default_factory=list)
    address: str | None = None
    #: A PNG or JPEG printed left of the lines (relative paths: beside the config file).
    logo: str | None = None


class Signer(_Model):
    """Who signs what no approval chain signs (the recap's surat pengantar)."""

    title: str = Field(min_length=1)
    name: str | None = None
    nip: str | None = None


class LetterRegister(_Model):
    """An outgoing-letter counter that several document kinds share.

    ``format`` fields: seq, code, unit, month, month_roman, year, kind. The counter
    restarts each year.
    """

    format: str = "{seq}/{code}/{unit}/{month_roman}/{year}"
    code: str = ""
    unit: str = ""
    kinds: list[str] = Field(min_length=1)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        sample = {"seq": 1, "code": "X", "unit": "U", "month": 1, "month_roman": "I",
                  "year": 2026, "kind": "k"}
        return numbering_pattern(value, sample, "; fields: " + ", ".join(NUMBER_FIELDS))

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        for kind in value:
            if kind not in KINDS:
                raise ValueError(f"unknown document kind {kind!r}; known: {', '.join(KINDS)}")
        return value

    def render(self, seq: int, at: datetime, kind: str, tz: str) -> str:
        local = at.astimezone(ZoneInfo(tz))
        return self.format.format(seq=seq, code=self.code, unit=self.unit, month=local.month,
                                  month_roman=_ROMAN[local.month - 1], year=local.year,
                                  kind=kind)


class DocumentsSettings(_Model):
    #: A folder with replacement templates (``<kind>.html.j2``, ``_base.html.j2``); a
    #: template not found there is taken from the package.
    templates_dir: str | None = None
    #: A TrueType font for text outside Latin-1 (and its bold face); without one the
    #: built-in Helvetica is used and other characters are transliterated.
    font: str | None = None
    font_bold: str | None = None
    #: The place in the date line ("Situbondo, 3 Desember 2026"); default: the regency's
    #: name without "Kabupaten"/"Kota".
    city: str | None = None
    kop: Kop = Kop()
    signer: Signer | None = None
    #: Roles that may download documents on the web page; empty: every signed-in role.
    roles: list[str] = Field(default_factory=list)
    registers: dict[str, LetterRegister] = Field(default_factory=dict)
    #: Standing copies per kind (e.g. ``surat_jawaban = ["Kepala Bidang ...", "Arsip"]``),
    #: printed after the case's own tembusan (a forward's copies).
    tembusan: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_register_per_kind(self) -> Self:
        seen: dict[str, str] = {}
        for name, reg in self.registers.items():
            for kind in reg.kinds:
                if kind in seen:
                    raise ValueError(f"registers.{name}.kinds: {kind!r} is already counted by "
                                     f"registers.{seen[kind]}")
                seen[kind] = name
        return self

    @field_validator("tembusan")
    @classmethod
    def _tembusan_kinds(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind in value:
            if kind not in KINDS:
                raise ValueError(f"unknown document kind {kind!r}; known: {', '.join(KINDS)}")
        return value

    def register_for(self, kind: str) -> tuple[str, LetterRegister] | None:
        return next(((n, r) for n, r in self.registers.items() if kind in r.kinds), None)


def documents_settings(settings: Settings) -> DocumentsSettings:
    """Validate ``[documents]``; raises ConfigError naming ``documents.<key>``."""
    return section_settings(settings, "documents", DocumentsSettings)


def resolve_path(settings: Settings, value: str) -> Path:
    """A path from the section; a relative one is relative to the config file."""
    path = Path(value)
    if not path.is_absolute() and settings.source not in ("<memory>", "", "<test>"):
        source = Path(settings.source)
        if source.exists():
            path = source.parent / path
    return path


def city_of(settings: Settings, cfg: DocumentsSettings) -> str:
    if cfg.city:
        return cfg.city
    name = settings.regency.name
    for prefix in ("Kabupaten ", "Kab. ", "Kota "):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


__all__ = ["DocumentsSettings", "Kop", "LetterRegister", "Signer", "city_of",
           "documents_settings", "resolve_path"]
