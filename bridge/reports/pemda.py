"""The Pemda-wide recap: every body's recap of a period summed, for the Sekda and the Bupati.

Each body's recap is computed from its own store exactly as its own recap file is (so the
sum and the bodies' files agree); the Pemda's is their sum: the headline figures added,
each group's bars added by key, a group "Menurut perangkat daerah" with each body's count,
and every complaint in one list (its register number names its body). Written as the
same HTML page and CSV files as a body's recap, plus ``<stem>-opd.csv``: one row of
headline figures per body and a total row.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bridge.app.deployment import Deployment
from bridge.documents.render import write_atomic
from bridge.filemodes import PRIVATE
from bridge.reports.csvsafe import csv_text
from bridge.reports.jobs import build_recap
from bridge.reports.period import Period
from bridge.reports.recap import Bar, Group, Recap
from bridge.reports.render import file_stem, write_recap
from bridge.reports.settings import reports_settings

BODY_GROUP = "perangkat_daerah"


@dataclass(frozen=True)
class BodyRecap:
    code: str
    name: str
    recap: Recap


def build_pemda_recap(dep: Deployment, period: Period, *, now: datetime,
                      title: str | None = None) -> tuple[Recap, list[BodyRecap]]:
    """Each body's recap of ``period`` at ``now`` and their sum (the Pemda's)."""
    parts = []
    for body, rt in dep:
        parts.append(BodyRecap(body.code, body.name,
                               build_recap(rt, period, now=now,
                                           cfg=reports_settings(rt.settings))))
    cfg = reports_settings(dep.settings)
    return sum_recaps(parts, regency=dep.settings.regency.name,
                      title=title or cfg.title, timezone=dep.settings.regency.timezone,
                      period=period, as_of=now), parts


def sum_recaps(parts: Sequence[BodyRecap], *, regency: str, title: str, timezone: str,
               period: Period, as_of: datetime) -> Recap:
    """The bodies' recaps added up (see the module doc)."""
    total = Recap(period=period, regency=regency, office=regency, title=title,
                  timezone=timezone, as_of=as_of)
    for part in parts:
        r = part.recap
        total.received += r.received
        total.finished_on_time += r.finished_on_time
        total.finished_late += r.finished_late
        total.open += r.open
        total.open_overdue += r.open_overdue
        total.followups += r.followups
        total.forwarded += r.forwarded
        total.escalated += r.escalated
        total.lines.extend(r.lines)
    total.lines.sort(key=lambda line: (line.received_at, line.register_no))
    total.groups = _sum_groups([p.recap for p in parts])
    by_body = Group(BODY_GROUP, "Menurut perangkat daerah", tuple(
        Bar(p.code, p.name, p.recap.received) for p in parts))
    # After the status group, which the page shows as its own chart.
    total.groups.insert(1 if total.groups and total.groups[0].key == "status" else 0, by_body)
    return total


def _sum_groups(recaps: Sequence[Recap]) -> list[Group]:
    order: list[tuple[str, str]] = []
    bars: dict[str, dict[str, str]] = {}
    counts: dict[str, Counter[str]] = {}
    for recap in recaps:
        for group in recap.groups:
            if group.key not in counts:
                order.append((group.key, group.title))
                counts[group.key] = Counter()
                bars[group.key] = {}
            for bar in group.bars:
                bars[group.key].setdefault(bar.key, bar.label)
                counts[group.key][bar.key] += bar.count
    out = []
    for key, title in order:
        labels = bars[key]
        # The status and month groups keep their order; the others, largest first.
        keys = list(labels) if key in ("status", "bulan") else _largest_first(
            labels, counts[key])
        out.append(Group(key, title, tuple(Bar(k, labels[k], counts[key][k]) for k in keys)))
    return out


def _largest_first(labels: dict[str, str], counts: Counter[str]) -> list[str]:
    return sorted(labels, key=lambda k: (-counts[k], labels[k]))


def bodies_csv(parts: Sequence[BodyRecap], total: Recap) -> str:
    """One row of headline figures per body, then the Pemda's total."""
    keys = [key for key, _label, _n in total.summary_rows()]
    rows: list[Sequence[object]] = [["kode", "perangkat_daerah", *keys]]
    for part in parts:
        rows.append([part.code, part.name, *(n for _k, _l, n in part.recap.summary_rows())])
    rows.append(["JUMLAH", total.regency, *(n for _k, _l, n in total.summary_rows())])
    return csv_text(rows)


def write_pemda_recap(total: Recap, parts: Sequence[BodyRecap],
                      out_dir: str | os.PathLike[str], code: str,
                      mode: int = PRIVATE) -> list[Path]:
    """The page and CSV files of the sum (as a body's recap), and ``<stem>-opd.csv``."""
    paths = write_recap(total, out_dir, code, mode)
    path = Path(out_dir) / f"{file_stem(total, code)}-opd.csv"
    write_atomic(path, bodies_csv(parts, total).encode("utf-8"), mode)
    return [*paths, path]


__all__ = ["BODY_GROUP", "BodyRecap", "bodies_csv", "build_pemda_recap", "sum_recaps",
           "write_pemda_recap"]
