"""The rekapitulasi: complaints received in a period, what happened to them, in figures.

Computed from the local store only (cases and their history), so that the recap, the
staff page and the queue agree. No reporter identity and no complaint text is read into
a recap: it goes to the Walikota/Bupati and is filed, and the reporter of an anonim or
rahasia report must not appear in it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.config import Settings
from bridge.locale import CHANNEL_LABELS
from bridge.reports.csvsafe import csv_text
from bridge.reports.period import Period, days, month
from bridge.services.deadlines import FOLLOWUP_KINDS, CaseDeadlines
from bridge.store.models import Case, CaseEvent
from bridge.workflow.calendar import calendar_from_mapping
from bridge.workflow.deadlines import overall_deadline
from bridge.workflow.profile import Workflow

#: Status of a case in a recap, in the order the recap shows them.
STATUS_LABELS: dict[str, str] = {
    "tepat_waktu": "Selesai tepat waktu",
    "terlambat": "Selesai melewati batas waktu",
    "proses": "Masih dalam proses",
    "proses_lewat": "Dalam proses, melewati batas waktu",
}
NOT_GIVEN = "(tidak diisi)"
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Bar:
    key: str
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    title: str
    bars: tuple[Bar, ...]

    @property
    def total(self) -> int:
        return sum(b.count for b in self.bars)

    @property
    def top(self) -> int:
        """The largest bar (the staff page scales its chart to it)."""
        return max((b.count for b in self.bars), default=0)


@dataclass(frozen=True, slots=True)
class CaseLine:
    """One complaint in the recap's list: its subject, never its reporter or full text."""

    register_no: str
    tracking_id: str
    title: str
    received_at: datetime
    channel: str
    category: str
    severity: str
    opd: str
    stage: str
    followups: int
    last_followup_at: datetime | None
    deadline_at: datetime | None
    finished_at: datetime | None
    status: str
    escalated: bool
    forwarded: bool


@dataclass
class Recap:
    period: Period
    regency: str
    office: str
    title: str
    timezone: str
    as_of: datetime
    received: int = 0
    finished_on_time: int = 0
    finished_late: int = 0
    open: int = 0
    open_overdue: int = 0
    followups: int = 0
    forwarded: int = 0
    escalated: int = 0
    groups: list[Group] = field(default_factory=list)
    lines: list[CaseLine] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.finished_on_time + self.finished_late

    @property
    def still_open(self) -> int:
        return self.open + self.open_overdue

    def group(self, key: str) -> Group | None:
        return next((g for g in self.groups if g.key == key), None)

    def summary_rows(self) -> list[tuple[str, str, int]]:
        """(key, Indonesian label, count) of the headline figures."""
        return [
            ("diterima", "Pengaduan diterima", self.received),
            ("tindak_lanjut", "Tindak lanjut tercatat", self.followups),
            ("selesai", "Selesai", self.finished),
            ("selesai_tepat_waktu", STATUS_LABELS["tepat_waktu"], self.finished_on_time),
            ("selesai_terlambat", STATUS_LABELS["terlambat"], self.finished_late),
            ("masih_proses", "Masih dalam proses", self.still_open),
            ("proses_lewat_batas", STATUS_LABELS["proses_lewat"], self.open_overdue),
            ("diteruskan", "Diteruskan ke OPD/instansi lain", self.forwarded),
            ("dieskalasi", "Dieskalasi", self.escalated),
        ]


def _events(session: Session, ids: Sequence[int], as_of: datetime
            ) -> dict[int, list[tuple[datetime, str, dict[str, Any] | None]]]:
    out: dict[int, list[tuple[datetime, str, dict[str, Any] | None]]] = {i: [] for i in ids}
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start:start + _CHUNK])
        rows = session.execute(
            select(CaseEvent.case_id, CaseEvent.at, CaseEvent.kind, CaseEvent.changes)
            .where(CaseEvent.case_id.in_(chunk), CaseEvent.at <= as_of)
            .order_by(CaseEvent.id)
        ).all()
        for case_id, at, kind, changes in rows:
            out[case_id].append((at, kind, changes))
    return out


def _is_followup(kind: str, changes: dict[str, Any] | None) -> bool:
    # The same rule as the deadlines: recorded handling steps are not follow-ups.
    return kind in FOLLOWUP_KINDS and not (changes or {}).get("step")


def _group(key: str, title: str, counts: Counter[str], label: Callable[[str], str],
           order: Iterable[str] | None = None) -> Group:
    keys = list(order) if order is not None else [
        k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return Group(key, title, tuple(Bar(k, label(k), counts[k]) for k in keys))


def compute_recap(
    session: Session,
    settings: Settings,
    deadlines: CaseDeadlines,
    period: Period,
    *,
    as_of: datetime,
    office: str | None = None,
    title: str = "Rekapitulasi Pengaduan dan Tindak Lanjut",
) -> Recap:
    """The recap of the cases received in ``period``, as they stand at ``as_of``."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    workflow = deadlines.workflow
    calendar = deadlines.calendar
    tz = settings.regency.timezone
    lo, hi = period.bounds(tz)
    cases = list(session.scalars(
        select(Case).where(Case.received_at >= lo, Case.received_at < hi,
                           Case.received_at <= as_of)
        .order_by(Case.received_at, Case.id)))
    recap = Recap(period=period, regency=settings.regency.name,
                  office=office or settings.regency.name, title=title, timezone=tz,
                  as_of=as_of)
    events = _events(session, [c.id for c in cases], as_of)
    opd_names = {o.code: o.name for o in settings.opds}
    classes = workflow.profile.classes
    channels: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    opds: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    months: Counter[str] = Counter()
    own = f"Ditangani sendiri ({recap.office})"
    zone = ZoneInfo(tz)
    for case in cases:
        timeline = deadlines.timeline(session, case)
        due = overall_deadline(workflow, calendar, timeline)
        finished_at = due.met_at if due.met_at is not None and due.met_at <= as_of else None
        if finished_at is not None:
            late = due.due_at is not None and finished_at > due.due_at
            status = "terlambat" if late else "tepat_waktu"
        else:
            overdue = due.due_at is not None and as_of > due.due_at
            status = "proses_lewat" if overdue else "proses"
        followups = [at for at, kind, changes in events[case.id] if _is_followup(kind, changes)]
        data = case.data or {}
        escalated = bool(data.get("escalations"))
        forwarded = case.forwarded_to is not None
        target = case.forwarded_to or ""
        opd = opd_names.get(target, target) if forwarded else own
        severity = case.severity or ""
        recap.received += 1
        recap.followups += len(followups)
        recap.forwarded += forwarded
        recap.escalated += escalated
        channels[case.channel] += 1
        categories[case.category or NOT_GIVEN] += 1
        severities[severity or NOT_GIVEN] += 1
        opds[str(opd)] += 1
        stages[case.stage] += 1
        statuses[status] += 1
        local = case.received_at.astimezone(zone)
        months[f"{local.year}-{local.month:02d}"] += 1
        recap.lines.append(CaseLine(
            register_no=case.register_no,
            tracking_id=case.tracking_id or (str(case.lapor_id) if case.lapor_id else "-"),
            title=case.title,
            received_at=case.received_at,
            channel=CHANNEL_LABELS.get(case.channel, case.channel),
            category=case.category or NOT_GIVEN,
            severity=classes[severity].label if severity in classes else (severity or "-"),
            opd=str(opd),
            stage=workflow.stage_label(case.stage),
            followups=len(followups),
            last_followup_at=followups[-1] if followups else None,
            deadline_at=due.due_at,
            finished_at=finished_at,
            status=status,
            escalated=escalated,
            forwarded=forwarded,
        ))
    recap.finished_on_time = statuses["tepat_waktu"]
    recap.finished_late = statuses["terlambat"]
    recap.open = statuses["proses"]
    recap.open_overdue = statuses["proses_lewat"]
    recap.groups.append(_group("status", "Penyelesaian", statuses,
                               lambda k: STATUS_LABELS[k], order=STATUS_LABELS))
    if period.start.month != period.end.month or period.start.year != period.end.year:
        order = []
        y, m = period.start.year, period.start.month
        while (y, m) <= (period.end.year, period.end.month):
            order.append(f"{y}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        recap.groups.append(Group("bulan", "Menurut bulan diterima", tuple(
            Bar(k, month(int(k[:4]), int(k[5:])).label, months[k]) for k in order)))
    recap.groups.append(_group("kanal", "Menurut kanal pengaduan", channels,
                               lambda k: CHANNEL_LABELS.get(k, k)))
    recap.groups.append(_group("kategori", "Menurut kategori", categories, lambda k: k))
    if classes:
        recap.groups.append(_group(
            "klasifikasi", "Menurut klasifikasi", severities,
            lambda k: classes[k].label if k in classes else (
                "(belum diklasifikasi)" if k == NOT_GIVEN else k)))
    recap.groups.append(_group("opd", "Menurut OPD penanganan", opds, lambda k: k))
    recap.groups.append(_group("tahap", "Menurut tahap saat ini", stages,
                               workflow.stage_label))
    return recap


__all__ = [
    "CHANNEL_LABELS",
    "STATUS_LABELS",
    "Bar",
    "CaseLine",
    "Group",
    "Recap",
    "compute_recap",
]


def month_of(today: date) -> tuple[date, date]:
    """The first and last day of ``today``'s month (the staff page's default span)."""
    first = today.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


def recap_of_days(session: Session, settings: Settings, workflow: Workflow, start: date,
                  end: date, now: datetime | None = None) -> Recap:
    """The recap of any span of days, as the staff page shows it: the same computation as
    the recap files, so that the page and the files never disagree."""
    calendar = calendar_from_mapping(settings.section("calendar"),
                                     tz=settings.regency.timezone)
    return compute_recap(session, settings, CaseDeadlines(workflow, calendar),
                         days(start, end), as_of=now or datetime.now(UTC))


def page_csv(recap: Recap) -> str:
    """The staff page's CSV download: the headline figures and each group's bars."""
    rows: list[Sequence[object]] = [
        ["kelompok", "kunci", "label", "jumlah"],
        ["ringkasan", "diterima", "Pengaduan diterima", recap.received],
        ["ringkasan", "selesai", "Selesai / diteruskan", recap.finished],
        ["ringkasan", "lewat_tenggat", "Melewati tenggat", recap.open_overdue],
    ]
    rows.extend([g.key, b.key, b.label, b.count] for g in recap.groups
                if g.key != "status" for b in g.bars)
    return csv_text(rows)
