"""A case's history as sentences in Bahasa Indonesia, for staff reading a terminal.

Each stored :class:`~bridge.store.models.CaseEvent` (as :func:`case_detail` returns it:
``kind``, ``side``, ``actor``, ``changes``, ``note``) becomes one sentence, e.g.
``Berkas dinyatakan lengkap; tahap menjadi Terverifikasi.`` instead of the raw
``files_complete files_complete_at, stage``. Pure functions: no database, no I/O.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

#: What each workflow action did, as the start of a sentence.
ACTION_SENTENCES: dict[str, str] = {
    "register": "Dicatat di buku register",
    "files_complete": "Berkas dinyatakan lengkap",
    "return_incomplete": "Dikembalikan kepada pelapor karena berkas belum lengkap",
    "classify": "Diklasifikasikan",
    "dispose": "Didisposisikan",
    "forward_opd": "Diteruskan",
    "forward_body": "Diteruskan ke instansi lain (bukan wewenang)",
    "followup": "Tindak lanjut dicatat",
    "approve": "Disetujui",
    "answer_delivered": "Jawaban disampaikan kepada pelapor",
    "satisfied": "Pelapor menyatakan puas",
    "not_satisfied": "Pelapor menyatakan tidak puas",
    "escalate": "Dieskalasi",
    "close": "Kasus ditutup",
    "archive": "Kasus diarsipkan",
    "reopen": "Kasus dibuka kembali",
    "return_forward": "Dikembalikan kepada pengirim (bukan kewenangan)",
    "internal_forward_received": "Diterima dari OPD lain dalam satu Pemda",
    "internal_forward_delivered": "Diterima di antrean OPD tujuan",
}

#: Field names of changes, as staff call them.
FIELD_NAMES: dict[str, str] = {
    "title": "judul", "content": "isi laporan", "category": "kategori",
    "location": "lokasi", "attachments": "lampiran", "reporter": "pelapor",
    "remote_status_code": "status LAPOR!", "remote_status_name": "status LAPOR!",
    "remote_disposition_name": "disposisi LAPOR!", "status": "status LAPOR!",
    "disposition": "disposisi LAPOR!", "stage": "tahap", "severity": "klasifikasi",
    "assigned_to": "penanganan", "forwarded_to": "tujuan penerusan",
    "deadline_at": "tenggat", "register_no": "nomor register",
    "is_anonymous": "anonim", "is_secret": "rahasia", "files": "berkas",
    "followups": "tindak lanjut", "remote_updated_at": "waktu perubahan LAPOR!",
}

FAILURE_KINDS: dict[str, str] = {
    "error": "galat", "timeout": "melewati batas waktu",
    "bad_return": "jawaban tidak sah", "skipped": "dilewati",
}

HOOK_NAMES: dict[str, str] = {
    "classify_case": "klasifikasi", "route_case": "penentuan kewenangan",
    "stage_deadline": "perhitungan tenggat", "decide_escalation": "eskalasi",
    "notify": "pengiriman notifikasi",
}


def _new(changes: Mapping[str, Any], name: str) -> Any:
    value = changes.get(name)
    if isinstance(value, list | tuple) and len(value) == 2:
        return value[1]
    return None


def _fields(changes: Mapping[str, Any], skip: set[str]) -> str:
    names: list[str] = []
    for key in changes:
        if key in skip:
            continue
        label = FIELD_NAMES.get(key, key.replace("_", " "))
        if label not in names:
            names.append(label)
    return ", ".join(names)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def describe_event(event: Mapping[str, Any], stage_label: Callable[[str], str] = str) -> str:
    """One sentence saying what ``event`` was (who did it is printed beside it)."""
    kind = str(event.get("kind") or "")
    side = event.get("side")
    raw = event.get("changes")
    changes: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    note = str(event.get("note") or "").strip()
    stage = _new(changes, "stage")
    stage_part = f"; tahap menjadi {stage_label(str(stage))}" if stage else ""

    if kind in ACTION_SENTENCES:
        text = ACTION_SENTENCES[kind]
        details = {
            "classify": ("severity", " sebagai {}"),
            "dispose": ("assigned_to", " kepada {}"),
            "forward_opd": ("forwarded_to", " kepada {}"),
            "forward_body": ("forwarded_to", ": {}"),
        }
        if kind in details:
            field, pattern = details[kind]
            value = _new(changes, field)
            if value:
                text += pattern.format(value)
        copies = _new(changes, "tembusan")
        if copies:
            text += f", tembusan {', '.join(map(str, copies))}"
        text += stage_part
        return _sentence(text) + (f" Catatan: {_sentence(note)}" if note else "")
    if kind == "received":
        number = _new(changes, "register_no")
        where = "Laporan diterima dari LAPOR!" if side == "remote" else "Pengaduan dicatat"
        return _sentence(where + (f" dengan nomor register {number}" if number else ""))
    if kind in ("remote_changed", "changed", "updated"):
        what = _fields(changes, set())
        return _sentence(f"LAPOR! mengubah {what}" if what else "LAPOR! mengubah laporan")
    if kind == "triage":
        return _sentence(note or "Triase otomatis dijalankan")
    if kind == "plugin_failed":
        plugin = str(event.get("actor") or "").removeprefix("plugin:") or "?"
        failure = FAILURE_KINDS.get(str(changes.get("failure")), str(changes.get("failure")))
        hook = HOOK_NAMES.get(str(changes.get("hook")), str(changes.get("hook") or ""))
        during = changes.get("during") or changes.get("event")
        when = f" saat {during}" if during else ""
        return _sentence(f"Plugin {plugin} gagal ({failure}) pada {hook}{when}"
                         + (f": {note}" if note else ""))
    if kind in ("deadline_near", "deadline_missed"):
        name = _new(changes, "deadline") or "penyelesaian"
        verb = "sudah dekat" if kind == "deadline_near" else "terlewati"
        return _sentence(f"Tenggat {name} {verb}")
    if kind == "escalation_blocked":
        key = _new(changes, "escalation") or ""
        return _sentence(f"Eskalasi {key} belum dapat dilakukan" + (f": {note}" if note else ""))
    if kind == "outbox_retry":
        row = _new(changes, "outbox_id")
        return _sentence(f"Pengiriman #{row} ke LAPOR! dicoba lagi")
    if kind == "dead_letter":
        row = _new(changes, "outbox_id")
        return _sentence(f"Pengiriman #{row} ke LAPOR! gagal" + (f": {note}" if note else ""))
    what = _fields(changes, {"stage"})
    text = kind.replace("_", " ").capitalize() + (f" ({what})" if what else "") + stage_part
    return _sentence(text) + (f" Catatan: {_sentence(note)}" if note else "")


def who(event: Mapping[str, Any]) -> str:
    """Who did it, as staff say it."""
    if event.get("side") == "remote":
        return "LAPOR!"
    actor = str(event.get("actor") or "").strip()
    return actor or ("Sistem" if event.get("side") == "system" else "-")


def reporter_text(value: object) -> str:
    """The reporter as a line: ``Nama (email, telepon)``; hidden markers as they are."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        name = str(value.get("name") or "").strip()
        contacts = [str(value[k]).strip() for k in ("email", "phone")
                    if value.get(k) and str(value[k]).strip()]
        if name and contacts:
            return f"{unescape(name)} ({', '.join(contacts)})"
        return unescape(name) or ", ".join(contacts) or "-"
    return str(value)


def size_text(size: object) -> str | None:
    """``2.3 MB`` for a byte count LAPOR! gave; ``None`` when it gave none."""
    if isinstance(size, bool) or not isinstance(size, int | float) or size < 0:
        return None
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return None  # pragma: no cover


def unescape(text: str | None) -> str:
    """LAPOR! sends some text HTML-escaped (``&amp;``); staff should read ``&``."""
    return html.unescape(text) if text and "&" in text else (text or "")
