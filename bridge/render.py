"""Terminal rendering of the queue and a case, for staff (labels in Bahasa Indonesia)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

from bridge.services.queue import CaseDetail, QueueRow
from bridge.store.models import utcnow
from bridge.timefmt import local_date, local_time


def _console() -> Console:
    # Wide enough for the table when piped to a file or a log.
    return Console(width=None if Console().is_terminal else 160, highlight=False)


def queue_table(rows: Sequence[QueueRow], tz: str, title: str | None = None,
                stage_label: Callable[[str], str] = str) -> Table:
    table = Table(title=title, title_justify="left")
    for header in ("No. Register", "ID LAPOR!", "Diterima", "Judul", "Tahap", "Tenggat"):
        table.add_column(header, overflow="fold")
    now = utcnow()
    for r in rows:
        deadline = local_date(r.deadline_at, tz) if r.deadline_at else "-"
        if r.overdue(now):
            deadline += " (lewat)"
        title_text = ("● " if r.is_new else "") + r.title
        table.add_row(
            r.register_no,
            r.tracking_id or (str(r.lapor_id) if r.lapor_id else "-"),
            local_time(r.received_at, tz),
            title_text[:80],
            stage_label(r.stage),
            deadline,
        )
    return table


def print_queue(rows: Sequence[QueueRow], tz: str, title: str | None = None,
                stage_label: Callable[[str], str] = str) -> None:
    console = _console()
    if not rows:
        console.print("Antrean kosong.")
        return
    console.print(queue_table(rows, tz, title, stage_label))
    console.print(f"{len(rows)} pengaduan.")


def print_case(detail: CaseDetail, tz: str, stage_label: Callable[[str], str] = str) -> None:
    console = _console()
    c = detail.case
    console.print(f"[bold]{c.register_no}[/bold]  {c.title}")
    lines = [
        ("ID LAPOR!", c.tracking_id or c.lapor_id or "-"),
        ("Kanal", c.channel),
        ("Diterima", local_time(c.received_at, tz)),
        ("Tahap", stage_label(c.stage)),
        ("Klasifikasi", c.severity or "-"),
        ("Status LAPOR!", c.remote_status_name or "-"),
        ("Disposisi LAPOR!", detail.remote_disposition_name or "-"),
        ("Tenggat", local_date(c.deadline_at, tz)),
        ("Kategori", detail.category or "-"),
        ("Lokasi", detail.location or "-"),
        ("Pelapor", _reporter(detail.reporter)),
        ("Perlu perhatian", c.attention or "-"),
    ]
    for label, value in lines:
        console.print(f"  {label:<17} {value}", markup=False)
    console.print("\nIsi laporan:", markup=False)
    console.print(detail.content, markup=False)
    if detail.attachments:
        console.print("\nLampiran:", markup=False)
        for a in detail.attachments:
            console.print(f"  - {a.get('name')} ({a.get('mime') or '?'})", markup=False)
    console.print("\nRiwayat:", markup=False)
    for e in detail.history:
        from datetime import datetime

        at = local_time(datetime.fromisoformat(e["at"]), tz)
        changes = ", ".join(sorted(e["changes"])) if e.get("changes") else ""
        note = f" — {e['note']}" if e.get("note") else ""
        console.print(f"  {at}  [{e['side']}] {e['actor'] or '-'}: {e['kind']} {changes}{note}",
                      markup=False)


def _reporter(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
