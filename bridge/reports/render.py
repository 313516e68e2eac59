"""Writing a recap: an HTML page with inline SVG charts and CSV files, in Bahasa Indonesia.

The HTML page is self-contained (inline CSS and SVG, no scripts, no external resources) so
that it can be e-mailed, archived and opened offline. The CSV files start with a BOM
(spreadsheet programs then read UTF-8) and never let a cell start like a formula.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from bridge.documents.render import write_atomic
from bridge.filemodes import PRIVATE
from bridge.locale import local_time
from bridge.reports.csvsafe import csv_text
from bridge.reports.recap import STATUS_LABELS, Group, Recap
from bridge.workflow.calendar import format_tanggal

#: Read with importlib.resources wherever the package is installed.
TEMPLATES = jinja2.PackageLoader("bridge.reports", "templates")
PALETTE = ("#1f5f8b", "#2e8b57", "#c0392b", "#d68910", "#6c3483", "#117a65", "#7f8c8d",
           "#a04000", "#1a5276", "#7d6608")
STATUS_COLOURS = {"tepat_waktu": "#2e8b57", "terlambat": "#d68910", "proses": "#1f5f8b",
                  "proses_lewat": "#c0392b"}

_ROW = 26
_LABEL_W = 270
_BAR_W = 330


def bar_chart_svg(group: Group) -> Markup:
    """A horizontal bar chart of ``group`` as inline SVG (labels escaped)."""
    bars = [b for b in group.bars if b.count] or list(group.bars)
    top = max((b.count for b in bars), default=0) or 1
    height = _ROW * max(len(bars), 1) + 8
    width = _LABEL_W + _BAR_W + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" class="chart">',
             f"<title>{escape(group.title)}</title>"]
    if not bars:
        parts.append('<text x="0" y="18" class="muted">Tidak ada data</text>')
    for i, bar in enumerate(bars):
        y = 4 + i * _ROW
        length = round(_BAR_W * bar.count / top) if bar.count else 0
        colour = STATUS_COLOURS.get(bar.key) or PALETTE[i % len(PALETTE)]
        label = bar.label if len(bar.label) <= 42 else bar.label[:40] + "…"
        parts.append(f'<text x="{_LABEL_W - 8}" y="{y + 16}" text-anchor="end">'
                     f"<title>{escape(bar.label)}</title>{escape(label)}</text>")
        parts.append(f'<rect x="{_LABEL_W}" y="{y + 3}" width="{max(length, 1)}" height="18" '
                     f'rx="2" fill="{colour}"/>')
        parts.append(f'<text x="{_LABEL_W + max(length, 1) + 6}" y="{y + 16}">'
                     f"{bar.count}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def status_chart_svg(recap: Recap) -> Markup:
    """One stacked bar: finished on time, late, open, open past the deadline."""
    counts = {"tepat_waktu": recap.finished_on_time, "terlambat": recap.finished_late,
              "proses": recap.open, "proses_lewat": recap.open_overdue}
    total = sum(counts.values())
    width, bar_h = 600, 28
    legend_y = bar_h + 22
    height = legend_y + 22 * len(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" class="chart">',
             "<title>Penyelesaian pengaduan</title>"]
    x = 0.0
    if total == 0:
        parts.append(f'<rect x="0" y="0" width="{width}" height="{bar_h}" fill="#d5d8dc"/>')
    for key, count in counts.items():
        if not count:
            continue
        w = width * count / total
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{bar_h}" '
                     f'fill="{STATUS_COLOURS[key]}"><title>{escape(STATUS_LABELS[key])}: '
                     f"{count}</title></rect>")
        x += w
    for i, (key, count) in enumerate(counts.items()):
        y = legend_y + i * 22
        share = f" ({100 * count / total:.0f}%)" if total else ""
        parts.append(f'<rect x="0" y="{y - 12}" width="14" height="14" '
                     f'fill="{STATUS_COLOURS[key]}"/>')
        parts.append(f'<text x="22" y="{y}">{escape(STATUS_LABELS[key])}: {count}{share}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _environment(tz: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=TEMPLATES,
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )

    def tanggal(value: date | datetime | None) -> str:
        if value is None:
            return "-"
        return format_tanggal(value, ZoneInfo(tz), weekday=False)

    env.filters["tanggal"] = tanggal
    env.filters["waktu"] = lambda v: local_time(v, tz)
    env.filters["bar_chart"] = bar_chart_svg
    return env


def render_html(recap: Recap) -> str:
    env = _environment(recap.timezone)
    template = env.get_template("rekapitulasi.html.j2")
    return template.render(recap=recap, status_chart=status_chart_svg(recap),
                           status_labels=STATUS_LABELS,
                           as_of_text=format_tanggal(recap.as_of, ZoneInfo(recap.timezone)),
                           as_of_time=local_time(recap.as_of, recap.timezone))


def summary_csv(recap: Recap) -> str:
    """Figures: the headline numbers, then every group (kelompok, kunci, label, jumlah)."""
    rows: list[Sequence[object]] = [["kelompok", "kunci", "label", "jumlah"]]
    rows.extend(["ringkasan", key, label, count] for key, label, count in recap.summary_rows())
    for group in recap.groups:
        rows.extend([group.key, bar.key, bar.label, bar.count] for bar in group.bars)
    return csv_text(rows)


def list_csv(recap: Recap) -> str:
    """One row per complaint of the period (no reporter, no complaint text)."""
    tz = recap.timezone

    def day(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(ZoneInfo(tz)).date().isoformat()

    rows: list[Sequence[object]] = [[
        "no_register", "id_lapor", "perihal", "tanggal_diterima", "kanal", "kategori", "klasifikasi",
        "opd_penanganan", "tahap", "jumlah_tindak_lanjut", "tindak_lanjut_terakhir",
        "batas_waktu", "tanggal_selesai", "status", "dieskalasi", "diteruskan"]]
    for line in recap.lines:
        rows.append([
            line.register_no, line.tracking_id, line.title, day(line.received_at), line.channel,
            line.category, line.severity, line.opd, line.stage, line.followups,
            day(line.last_followup_at), day(line.deadline_at), day(line.finished_at),
            STATUS_LABELS[line.status], "ya" if line.escalated else "tidak",
            "ya" if line.forwarded else "tidak"])
    return csv_text(rows)


def file_stem(recap: Recap, code: str) -> str:
    return f"rekapitulasi-{code.lower()}-{recap.period.code}"


def write_recap(recap: Recap, out_dir: str | os.PathLike[str], code: str,
                mode: int = PRIVATE) -> list[Path]:
    """Write ``<stem>.html``, ``<stem>.csv`` (figures) and ``<stem>-daftar.csv`` (the
    complaints) into ``out_dir`` (created if missing), each with ``mode`` (0600, or 0640
    with ``[files] group_read``); returns the paths."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = file_stem(recap, code)
    outputs = [
        (directory / f"{stem}.html", render_html(recap)),
        (directory / f"{stem}.csv", summary_csv(recap)),
        (directory / f"{stem}-daftar.csv", list_csv(recap)),
    ]
    for path, text in outputs:
        write_atomic(path, text.encode("utf-8"), mode)
    return [path for path, _ in outputs]


__all__ = [
    "bar_chart_svg",
    "file_stem",
    "list_csv",
    "render_html",
    "status_chart_svg",
    "summary_csv",
    "write_recap",
]
