"""The recap page's figures: complaints received in a period, by channel, category, stage
and class, plus how many are finished and how many ran past their deadline.

A small read-only query of the local store. When the reports feature (``bridge.reports``)
offers ``web_figures(session, start, end, settings, workflow) -> Recap | None``,
its figures are used instead, so the page and the official recap never disagree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.config import Settings
from bridge.reports.csvsafe import csv_text
from bridge.store.models import Case, utcnow
from bridge.workflow.profile import Workflow

CHANNEL_LABELS = {
    "lapor": "SP4N-LAPOR!", "surat": "Surat", "kotak": "Kotak pengaduan",
    "telepon": "Telepon", "langsung": "Datang langsung", "email": "E-mail", "sms": "SMS",
    "fax": "Faksimile", "website": "Situs web",
}


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    count: int


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    bars: tuple[Bar, ...]

    @property
    def top(self) -> int:
        return max((b.count for b in self.bars), default=0)


@dataclass
class Recap:
    start: date
    end: date  # inclusive
    total: int
    finished: int
    overdue: int
    groups: list[Group] = field(default_factory=list)
    source: str = "antrean lokal"


def period_bounds(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return (datetime.combine(start, time.min, zone),
            datetime.combine(end + timedelta(days=1), time.min, zone))


def month_of(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


def _grouped(session: Session, column: Any, lo: datetime, hi: datetime
             ) -> list[tuple[str | None, int]]:
    rows = session.execute(
        select(column, func.count()).where(Case.received_at >= lo, Case.received_at < hi)
        .group_by(column).order_by(func.count().desc())
    ).all()
    return [(k, int(n)) for k, n in rows]


def _external() -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module("bridge.reports")
    except ModuleNotFoundError as exc:
        if exc.name and "bridge.reports".startswith(exc.name):
            return None
        raise
    fn = getattr(mod, "web_figures", None)
    return fn if callable(fn) else None


def compute(session: Session, settings: Settings, workflow: Workflow, start: date,
            end: date, now: datetime | None = None) -> Recap:
    external = _external()
    if external is not None:
        result = external(session, start, end, settings, workflow)
        if isinstance(result, Recap):
            return result
    lo, hi = period_bounds(start, end, settings.regency.timezone)
    now = now or utcnow()
    in_period = (Case.received_at >= lo, Case.received_at < hi)
    total = session.scalar(select(func.count()).select_from(Case).where(*in_period)) or 0
    finished_stages = [s for s in workflow.stages if workflow.is_resolved(s)]
    finished = session.scalar(select(func.count()).select_from(Case).where(
        *in_period, Case.stage.in_(finished_stages))) or 0
    overdue = session.scalar(select(func.count()).select_from(Case).where(
        *in_period, Case.deadline_at.is_not(None), Case.deadline_at < now)) or 0

    def bars(rows: Sequence[tuple[str | None, int]], label: Callable[[str], str]
             ) -> tuple[Bar, ...]:
        return tuple(Bar(k or "", label(k) if k else "(tidak diisi)", n) for k, n in rows)

    classes = workflow.profile.classes
    groups = [
        Group("kanal", "Menurut kanal", bars(_grouped(session, Case.channel, lo, hi),
                                             lambda k: CHANNEL_LABELS.get(k, k))),
        Group("kategori", "Menurut kategori", bars(_grouped(session, Case.category, lo, hi),
                                                   lambda k: k)),
        Group("tahap", "Menurut tahap sekarang", bars(_grouped(session, Case.stage, lo, hi),
                                                      workflow.stage_label)),
        Group("klasifikasi", "Menurut klasifikasi",
              bars(_grouped(session, Case.severity, lo, hi),
                   lambda k: classes[k].label if k in classes else k)),
    ]
    return Recap(start, end, int(total), int(finished), int(overdue), groups)


def to_csv(recap: Recap) -> str:
    rows: list[Sequence[object]] = [
        ["kelompok", "kunci", "label", "jumlah"],
        ["ringkasan", "diterima", "Pengaduan diterima", recap.total],
        ["ringkasan", "selesai", "Selesai / diteruskan", recap.finished],
        ["ringkasan", "lewat_tenggat", "Melewati tenggat", recap.overdue],
    ]
    rows.extend([g.key, b.key, b.label, b.count] for g in recap.groups for b in g.bars)
    return csv_text(rows)
