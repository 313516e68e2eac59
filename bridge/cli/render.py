"""Terminal rendering of the queue and a case, for staff (labels in Bahasa Indonesia)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from rich.console import Console
from rich.table import Table

from bridge.locale import local_time, short_date
from bridge.services.history import describe_event, reporter_text, size_text, unescape, who
from bridge.services.queue import CaseDetail, QueueRow
from bridge.store.models import utcnow


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
        deadline = short_date(r.deadline_at, tz) if r.deadline_at else "-"
        if r.overdue(now):
            deadline += " (lewat)"
        title_text = ("● " if r.is_new else "") + unescape(r.title)
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
    console.print(f"[bold]{c.register_no}[/bold]  {unescape(c.title)}", markup=False)
    lines = [
        ("ID LAPOR!", c.tracking_id or c.lapor_id or "-"),
        ("Kanal", c.channel),
        ("Diterima", local_time(c.received_at, tz)),
        ("Tahap", stage_label(c.stage)),
        ("Klasifikasi", c.severity or "-"),
        ("Status LAPOR!", c.remote_status_name or "-"),
        ("Disposisi LAPOR!", detail.remote_disposition_name or "-"),
        ("Tenggat", short_date(c.deadline_at, tz)),
        ("Kategori", unescape(detail.category) or "-"),
        ("Lokasi", unescape(detail.location) or "-"),
        ("Pelapor", reporter_text(detail.reporter)),
        ("Perlu perhatian", c.attention or "-"),
    ]
    for label, value in lines:
        console.print(f"  {label:<17} {value}", markup=False)
    console.print("\nIsi laporan:", markup=False)
    console.print(unescape(detail.content), markup=False)
    if detail.attachments:
        console.print("\nLampiran:", markup=False)
        for a in detail.attachments:
            facts = [str(f) for f in (a.get("mime"), size_text(a.get("size"))) if f]
            about = f" ({', '.join(facts)})" if facts else ""
            console.print(f"  - {unescape(str(a.get('name') or '-'))}{about}", markup=False)
    console.print("\nRiwayat:", markup=False)
    for e in detail.history:
        at = local_time(datetime.fromisoformat(e["at"]), tz)
        console.print(f"  {at}  {who(e)}: {describe_event(e, stage_label)}", markup=False)
