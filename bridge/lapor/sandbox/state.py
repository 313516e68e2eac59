"""The sandbox's data: reports, their history, follow-ups, institutions and templates.

Thread-safe: the HTTP server runs in its own thread while tests call these methods from
theirs; every public method takes the one lock, and returns copies, never live objects.

Scale: reports are kept as ready-to-serialise dicts with their JSON cached per report,
and the inbox order is a sorted list of ``(updated_ts, id)`` searched with bisect. The
history of a seeded report (status logs, data logs, follow-ups) is generated from its own
RNG the first time it is read or changed, so seeding 100,000 reports stays fast.
"""

from __future__ import annotations

import copy
import json
import json.encoder
import random
import threading
import time
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bridge.errors import BridgeError
from bridge.lapor.models import RemoteComplaint, format_local_time, parse_remote_time
from bridge.lapor.sandbox.dialect import Dialect
from bridge.lapor.sandbox.faults import FaultInjector, Faults
from bridge.lapor.sandbox.seed import (
    CATEGORIES,
    CLASSIFICATIONS,
    LOCATION_TEXT,
    STATUS_NAMES,
    TEMPLATES,
    WIB,
    ReportFactory,
    closing_followup_text,
    followup_text,
    institutions_for,
    iso,
)

#: Ids of follow-ups and data logs posted after seeding start here; history generated for
#: report ``r`` uses ``r * 10 + k``. Keeps ids unique without generating history eagerly.
POSTED_ID_BASE = 1_000_000_000
#: The status a follow-up moves a report up to.
IN_PROGRESS = "2"
#: Template codes whose follow-up sets the report's status (code -> status code), as
#: LAPOR!'s completion template closes a report: the bridge's profiles name these codes
#: in ``[workflow.lapor.*]``. A sandbox may be given others (``status_templates``).
STATUS_TEMPLATES: dict[str, str] = {"TL-SELESAI": "3", "TL-ARSIP": "4", "TL-BUKA": "2"}

#: Fields of a report that /_sandbox/ and :meth:`SandboxState.add_report` may set.
REPORT_FIELDS = frozenset({
    "tracking_id", "title", "content", "status_code", "status_name", "disposition_id",
    "disposition_name", "is_anonymous", "is_secret", "category", "location", "channel",
    "reporter", "attachments", "created_at", "updated_at",
})


def _no_default(value: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _make_dumps() -> Callable[[Any], str]:
    # json.dumps builds a new C encoder on every call; for 1000 small dicts per inbox page
    # that set-up is half the cost, so build it once (pure-Python fallback if absent).
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:
        return json.JSONEncoder(separators=(",", ":")).encode
    encoder = c_make_encoder(None, _no_default, json.encoder.encode_basestring_ascii, None,
                             ":", ",", False, False, True)

    def dumps(value: Any) -> str:
        return "".join(encoder(value, 0))

    return dumps


_DUMPS = _make_dumps()


class SandboxError(BridgeError):
    """A request the sandbox refuses; ``status`` and ``body()`` say how LAPOR! would."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


class SandboxNotFound(SandboxError):
    status = 404


class SandboxValidationError(SandboxError):
    """Laravel-style 422: ``{"message": first error (+ count), "errors": {field: [msg]}}``."""

    status = 422

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {k: list(v) for k, v in errors.items()}
        messages = [m for ms in self.errors.values() for m in ms]
        message = messages[0] if messages else "Data yang diberikan tidak valid."
        if len(messages) > 1:
            message += f" (dan {len(messages) - 1} kesalahan lainnya)"
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "errors": self.errors}


@dataclass
class InboxSlice:
    """One inbox page as cached JSON fragments, with where it sits in the index."""

    items: list[bytes]
    total: int
    #: Index positions: first item matching ``updated_since``, this page's start and end.
    lo: int
    start: int
    end: int


@dataclass
class _History:
    status_logs: list[dict[str, Any]] = field(default_factory=list)
    data_logs: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class UploadedFile:
    """What an endpoint received as a file; the sandbox keeps metadata, not bytes."""

    name: str
    size: int
    mime: str


def _to_ts(value: Any) -> int:
    return int(parse_remote_time(value).timestamp())


def _named(institutions: Mapping[int, str], iid: int) -> dict[str, Any]:
    return {"id": iid, "name": institutions[iid]}


class _Fields:
    """Collects Laravel-style validation errors over form or JSON fields."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def _raw(self, name: str) -> Any:
        value = self.data.get(name)
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    def text(self, name: str, *, required: bool = True, max_len: int | None = None) -> str | None:
        value = self._raw(name)
        if value is None:
            if required:
                self.fail(name, f"Kolom {name} wajib diisi.")
            return None
        if not isinstance(value, str):
            self.fail(name, f"{name} harus berupa teks.")
            return None
        if max_len is not None and len(value) > max_len:
            self.fail(name, f"{name} maksimal berisi {max_len} karakter.")
            return None
        return value

    def integer(
        self, name: str, *, required: bool = True, allowed: Container[int] | None = None
    ) -> int | None:
        value = self._raw(name)
        if value is None:
            if required:
                self.fail(name, f"Kolom {name} wajib diisi.")
            return None
        try:
            if isinstance(value, (bool, float)):
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            self.fail(name, f"{name} harus berupa bilangan bulat.")
            return None
        if allowed is not None and number not in allowed:
            self.fail(name, f"{name} yang dipilih tidak valid.")
            return None
        return number

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true"):
            return True
        if text in ("0", "false"):
            return False
        self.fail(name, f"{name} harus bernilai true atau false.")
        return default

    def check(self) -> None:
        if self.errors:
            raise SandboxValidationError(self.errors)


class SandboxState:
    """All the sandbox's data and faults, seeded deterministically.

    ``SandboxState(seed=N, reports=M)`` gives M reports, all disposed to our institution at
    some point (so all are in the inbox), created over the 60 days before ``anchor``
    (default: the start of today in Jakarta, so a seed gives the same data all day).
    """

    def __init__(
        self,
        seed: int = 0,
        reports: int = 50,
        *,
        institution_id: int = 1,
        anchor: datetime | None = None,
        faults: Faults | Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        dialect: str = "lapor-v3",
        status_templates: Mapping[str, str] | None = None,
    ) -> None:
        if reports < 0:
            raise ValueError("reports must be >= 0")
        if institution_id < 1:
            raise ValueError("institution_id must be >= 1")
        self.seed = seed
        #: The shapes this sandbox writes (see dialect.py).
        self.dialect = Dialect(dialect)
        self.institution_id = institution_id
        #: Template code -> the status its follow-up sets (see STATUS_TEMPLATES).
        self.status_templates: dict[str, str] = dict(
            STATUS_TEMPLATES if status_templates is None else status_templates)
        self.clock = clock
        self.lock = threading.RLock()
        self.injector = FaultInjector(self._faults_of(faults))
        if anchor is None:
            anchor = datetime.now(WIB).replace(hour=0, minute=0, second=0, microsecond=0)
        self.anchor_ts = int(anchor.timestamp())
        self.institutions: dict[int, str] = institutions_for(institution_id)
        self.templates: list[dict[str, Any]] = [
            {"id": i, **t} for i, t in enumerate(TEMPLATES, start=1)
        ]
        self._reports: dict[int, dict[str, Any]] = {}
        self._updated: dict[int, int] = {}
        self._json: dict[int, bytes] = {}
        self._listed: set[int] = set()
        self._index: list[tuple[int, int]] = []
        self._history: dict[int, _History] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._posted_seq = POSTED_ID_BASE
        #: Writes taken through the LAPOR! endpoints, by kind (for checks and /state).
        self.writes: Counter[str] = Counter()
        self._factory = ReportFactory(random.Random(seed), self.institutions, institution_id)
        self._seed_reports(reports)
        self._next_id = reports + 1
        # Later random picks (admin adds, random changes) must not shift the seeded data.
        self._rng = random.Random(seed ^ 0x5EED_CAFE)
        self._factory.rng = self._rng

    # ------------------------------------------------------------------ seeding

    def _seed_reports(self, count: int) -> None:
        factory = self._factory
        for rid in range(1, count + 1):
            created, updated = factory.times(self.anchor_ts)
            data = factory.report(rid, created, updated)
            self._reports[rid] = data
            self._updated[rid] = updated
            self._listed.add(rid)
            self._index.append((updated, rid))
        self._index.sort()

    def _history_of(self, rid: int) -> _History:
        """The report's history, generated from its own RNG on first use."""
        hist = self._history.get(rid)
        if hist is not None:
            return hist
        data = self._reports[rid]
        rng = random.Random(self.seed * 1_000_003 + rid)
        created = _to_ts(data["created_at"])
        updated = self._updated[rid]
        span = max(updated - created, 1)
        status = data["status_code"]
        disposition = data["disposition_id"]
        our = self.institution_id
        admin = self._factory.admin_id
        hist = _History()
        seq = rid * 10

        def t(frac: float) -> int:
            return created + int(span * frac)

        hist.status_logs.append({"note": "Laporan diterima", "timestamp": iso(created),
                                 "status_code": "0", "status_name": STATUS_NAMES["0"]})
        if status != "0":
            hist.status_logs.append({
                "note": f"Laporan diverifikasi dan didisposisikan ke {self.institutions[our]}",
                "timestamp": iso(t(0.05)), "status_code": "1", "status_name": STATUS_NAMES["1"],
            })
            hist.data_logs.append(self._data_log(
                seq, admin, our, "0", "1", "Disposisi oleh admin instansi", t(0.05)))
            seq += 1
        if disposition != our and disposition is not None:
            hist.data_logs.append(self._data_log(
                seq, our, disposition, status, status, "Bukan wewenang", t(0.1)))
            seq += 1
        if status in ("2", "3", "4"):
            n_followups = 1 + int(status == "3") + int(rng.random() < 0.3)
            for k in range(n_followups):
                when = t(0.2 + 0.7 * (k + 1) / (n_followups + 1))
                if status == "3" and k == n_followups - 1:
                    content = closing_followup_text()
                else:
                    content = followup_text(rng, str(data.get("location") or ""))
                hist.followups.append({
                    "id": rid * 10 + k,
                    "complaint_id": rid,
                    "content": content,
                    "created_at": format_local_time(datetime.fromtimestamp(when, WIB)),
                    "institution_from": _named(self.institutions, our),
                    "institution_to": _named(self.institutions, admin),
                    "is_secret": 0,
                    "attachments": [],
                })
            hist.status_logs.append({"note": "Tindak lanjut dari instansi",
                                     "timestamp": iso(t(0.4)), "status_code": "2",
                                     "status_name": STATUS_NAMES["2"]})
        if status in ("3", "4", "5"):
            hist.status_logs.append({"note": f"Status laporan: {STATUS_NAMES[status]}",
                                     "timestamp": iso(updated), "status_code": status,
                                     "status_name": STATUS_NAMES[status]})
        self._history[rid] = hist
        return hist

    def _data_log(self, log_id: int, frm: int, to: int, old: str, new: str, note: str,
                  ts: int) -> dict[str, Any]:
        return {
            "id": log_id,
            "institution_from": _named(self.institutions, frm),
            "institution_to": _named(self.institutions, to),
            "data": {"status_old": {"code": old, "name": STATUS_NAMES.get(old, old)},
                     "status_new": {"code": new, "name": STATUS_NAMES.get(new, new)}},
            "note": note,
            "created_at": iso(ts),
        }

    def _next_posted_id(self) -> int:
        self._posted_seq += 1
        return self._posted_seq

    # ------------------------------------------------------------------ internals

    def _get(self, rid: int) -> dict[str, Any]:
        data = self._reports.get(rid)
        if data is None:
            raise SandboxNotFound(f"Laporan dengan id {rid} tidak ditemukan.")
        return data

    def now(self) -> int:
        return int(self.clock())

    def _set_updated(self, rid: int, ts: int) -> None:
        old = self._updated[rid]
        if rid in self._listed:
            i = bisect_left(self._index, (old, rid))
            del self._index[i]
            insort(self._index, (ts, rid))
        self._updated[rid] = ts
        self._reports[rid]["updated_at"] = iso(ts)
        self._json.pop(rid, None)

    def _mark_listed(self, rid: int) -> None:
        # The inbox lists every report that is or was disposed to us.
        if rid not in self._listed and self._reports[rid].get("disposition_id") == \
                self.institution_id:
            self._listed.add(rid)
            insort(self._index, (self._updated[rid], rid))

    def _fragment(self, rid: int) -> bytes:
        frag = self._json.get(rid)
        if frag is None:
            frag = _DUMPS(self.dialect.report(self._reports[rid])).encode()
            self._json[rid] = frag
        return frag

    @staticmethod
    def _faults_of(value: Faults | Mapping[str, Any] | None) -> Faults:
        if value is None:
            return Faults()
        if isinstance(value, Faults):
            return value
        try:
            return Faults.model_validate(dict(value))
        except ValidationError as exc:
            raise SandboxValidationError(_pydantic_errors(exc)) from None

    # ------------------------------------------------------------------ faults

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    def set_faults(self, faults: Faults | Mapping[str, Any] | None = None,
                   **fields: Any) -> Faults:
        """Replace the faults (unset fields take their defaults; no arguments = none)."""
        if faults is not None and fields:
            raise TypeError("give a Faults object or keyword fields, not both")
        new = self._faults_of(faults if faults is not None else fields)
        self.injector.set(new)
        return new

    def counters(self) -> dict[str, int]:
        """Requests served and faults injected, by name."""
        return self.injector.snapshot()

    # ------------------------------------------------------------------ reading

    def report(self, rid: int) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._get(rid))

    def reports(self, *, listed_only: bool = False) -> list[dict[str, Any]]:
        """Every report (or only those in our inbox), ordered by id."""
        with self.lock:
            ids = sorted(self._listed if listed_only else self._reports)
            return [copy.deepcopy(self._reports[i]) for i in ids]

    def inbox_ids(self) -> list[int]:
        """Ids in inbox order: (updated_at, id) ascending."""
        with self.lock:
            return [rid for _, rid in self._index]

    def is_listed(self, rid: int) -> bool:
        with self.lock:
            self._get(rid)
            return rid in self._listed

    def followups_of(self, rid: int) -> list[dict[str, Any]]:
        with self.lock:
            self._get(rid)
            return copy.deepcopy(self._history_of(rid).followups)

    def data_logs_of(self, rid: int) -> list[dict[str, Any]]:
        with self.lock:
            self._get(rid)
            return copy.deepcopy(self._history_of(rid).data_logs)

    def uploads(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._uploads)

    def summary(self) -> dict[str, Any]:
        """Counts, faults and counters (what ``GET /_sandbox/state`` answers)."""
        with self.lock:
            return {
                "seed": self.seed,
                "institution_id": self.institution_id,
                "reports": len(self._reports),
                "listed": len(self._index),
                "writes": dict(sorted(self.writes.items())),
                "uploads": len(self._uploads),
                "institutions": len(self.institutions),
                "templates": len(self.templates),
                "faults": self.faults.model_dump(),
                "counters": self.counters(),
            }

    # ------------------------------------------------------------------ LAPOR! reads

    def inbox(self, since: datetime | None, page: int, page_size: int) -> InboxSlice:
        """Reports with updated_at >= since, ordered by (updated_at, id), one page."""
        with self.lock:
            lo = 0
            if since is not None:
                since_ts = since.timestamp()
                # Stored times have second resolution: a fractional bound rounds up.
                ceil_ts = int(since_ts) + (since_ts > int(since_ts))
                lo = bisect_left(self._index, (ceil_ts, -1))
            size = len(self._index)
            start = min(lo + (page - 1) * page_size, size)
            end = min(start + page_size, size)
            items = [self._fragment(rid) for _, rid in self._index[start:end]]
            return InboxSlice(items, size - lo, lo, start, end)

    def malformed_fragment(self, fragment: bytes) -> bytes:
        """A broken copy of one served inbox item (the stored report is untouched)."""
        item: dict[str, Any] = json.loads(fragment)
        return _DUMPS(self.injector.malform(item)).encode()

    def change_between_pages(self, page: InboxSlice) -> int | None:
        """Maybe move one report to the end after a page; returns its id (or None)."""
        faults = self.faults
        if page.end >= page.lo + page.total or faults.change_between_pages <= 0:
            return None
        if not self.injector.roll(faults.change_between_pages):
            return None
        with self.lock:
            size = len(self._index)
            if faults.change_target == "served" and page.end > page.start:
                i = self.injector.randrange(page.start, min(page.end, size))
            elif page.end < size:
                # Not the report that is already last: moving it would change nothing.
                i = self.injector.randrange(page.end, max(size - 1, page.end + 1))
            else:
                return None
            rid = self._index[i][1]
            # Really last: past the newest report, even one changed in this same second.
            last_ts, last_id = self._index[-1]
            ts = max(self.now(), last_ts)
            if rid != last_id and (ts, rid) < (last_ts, last_id):
                ts = last_ts + 1
            self._set_updated(rid, ts)
            self.injector.count("changed_between_pages")
            return rid

    def detail(self, rid: int) -> dict[str, Any]:
        """``results`` of the complaint detail: data (with status_logs) and data_logs."""
        with self.lock:
            data = self._get(rid)
            hist = self._history_of(rid)
            return copy.deepcopy({"data": {**self.dialect.report(data),
                                           "status_logs": hist.status_logs},
                                  "data_logs": hist.data_logs})

    def followups_page(self, rid: int, page: int, page_size: int
                       ) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            self._get(rid)
            items = self._history_of(rid).followups
            start = (page - 1) * page_size
            return copy.deepcopy(items[start:start + page_size]), len(items)

    def institution_list(self) -> list[dict[str, Any]]:
        return [{"id": i, "name": n} for i, n in sorted(self.institutions.items())]

    def template_list(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.templates)

    # ------------------------------------------------------------------ LAPOR! writes

    def _attachment_meta(self, files: Iterable[UploadedFile]) -> list[dict[str, Any]]:
        result = []
        for f in files:
            att_id = self._factory.next_attachment_id()
            result.append({
                "id": att_id, "name": f.name, "size": f.size, "mime": f.mime,
                "url": f"https://www.lapor.go.id/storage/sandbox/{att_id}/{f.name}",
            })
        return result

    def add_followup(self, fields: Mapping[str, Any],
                     attachments: Iterable[UploadedFile] = ()) -> dict[str, Any]:
        """``followup/add``: validate (422), find the report (404), record, bump."""
        v = _Fields(fields)
        rid = v.integer("complaint_id")
        user_id = v.integer("user_id")
        frm = v.integer("institution_from_id", allowed=self.institutions)
        to = v.integer("institution_to_id", allowed=self.institutions)
        content = v.text("content", max_len=20_000)
        template_code = v.text("template_code", required=False)
        rating = v.integer("rating", required=False, allowed=range(0, 6))
        secret = v.flag("is_secret")
        v.check()
        assert rid is not None and frm is not None and to is not None and content is not None
        with self.lock:
            data = self._get(rid)
            hist = self._history_of(rid)
            now = self.now()
            followup = {
                "id": self._next_posted_id(),
                "complaint_id": rid,
                "content": content,
                "created_at": format_local_time(datetime.fromtimestamp(now, WIB)),
                "institution_from": _named(self.institutions, frm),
                "institution_to": _named(self.institutions, to),
                "is_secret": int(secret),
                "template_code": template_code or "",
                "rating": rating or 0,
                "user_id": user_id,
                "attachments": self._attachment_meta(attachments),
            }
            hist.followups.append(followup)
            self.writes["followups_added"] += 1
            old = str(data["status_code"])
            status = self.status_templates.get(template_code or "")
            if status is not None and status != old:
                self._set_status(rid, status, f"Tindak lanjut ({template_code}) dari "
                                 f"{self.institutions[frm]}", now, frm, to)
            elif status is None and old.isdigit() and int(old) < int(IN_PROGRESS):
                self._set_status(rid, IN_PROGRESS, f"Tindak lanjut dari {self.institutions[frm]}",
                                 now, frm, to)
            self._set_updated(rid, now)
            return copy.deepcopy(followup)

    def _set_status(self, rid: int, code: str, note: str, now: int, frm: int, to: int) -> None:
        data = self._reports[rid]
        hist = self._history_of(rid)
        old = str(data["status_code"])
        data["status_code"] = code
        data["status_name"] = STATUS_NAMES.get(code, code)
        hist.status_logs.append({"note": note, "timestamp": iso(now), "status_code": code,
                                 "status_name": data["status_name"]})
        hist.data_logs.append(self._data_log(self._next_posted_id(), frm, to, old, code, note,
                                             now))
        self._json.pop(rid, None)

    def forward(self, rid: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``process/{id}/reject`` with not_authority=1: dispose to another body."""
        v = _Fields(fields)
        target = v.integer("reason", allowed=self.institutions)
        description = v.text("reason_description", max_len=5_000)
        if not v.flag("not_authority", default=False) and "not_authority" not in v.errors:
            v.fail("not_authority", "Sandbox hanya mendukung not_authority=1 (bukan wewenang).")
        v.flag("is_request", default=True)
        v.check()
        assert target is not None and description is not None
        with self.lock:
            data = self._get(rid)
            hist = self._history_of(rid)
            current = data.get("disposition_id")
            if target == current:
                raise SandboxValidationError(
                    {"reason": ["Laporan sudah didisposisikan ke instansi tersebut."]})
            now = self.now()
            status = str(data["status_code"])
            frm = current if isinstance(current, int) and current in self.institutions \
                else self.institution_id
            note = f"Bukan wewenang, diteruskan ke {self.institutions[target]}: {description}"
            hist.data_logs.append(self._data_log(self._next_posted_id(), frm, target, status,
                                                 status, note, now))
            hist.status_logs.append({"note": note, "timestamp": iso(now),
                                     "status_code": status, "status_name": data["status_name"]})
            data["disposition_id"] = target
            data["disposition_name"] = self.institutions[target]
            self._mark_listed(rid)
            self._set_updated(rid, now)
            self.writes["forwards"] += 1
            return {"id": rid, "disposition_id": target}

    def upload(self, files: Iterable[UploadedFile]) -> list[dict[str, Any]]:
        """``complaint/file``: keep metadata of each file, return the docs with ids."""
        files = list(files)
        if not files:
            raise SandboxValidationError({"attachments": ["Kolom attachments wajib diisi."]})
        with self.lock:
            docs = self._attachment_meta(files)
            for doc in docs:
                self._uploads[doc["id"]] = doc
            self.writes["files_uploaded"] += len(docs)
            return copy.deepcopy(docs)

    def create_complaint(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /complaints/complaint``; listed in our inbox if disposed to us."""
        fields = self.dialect.create_fields(fields)
        v = _Fields(fields)
        title = v.text("title", max_len=500)
        content = v.text("content", max_len=100_000)
        channel = v.text("channel", max_len=50)
        v.integer("classification_id", required=False, allowed=CLASSIFICATIONS)
        category_id = v.integer("category_id", required=False, allowed=CATEGORIES)
        location_id = v.integer("location_id", required=False, allowed=LOCATION_TEXT)
        disposition = v.integer("disposition_id", required=False, allowed=self.institutions)
        incident = v.text("date_of_incident", required=False)
        if incident is not None:
            try:
                parse_remote_time(incident if "T" in incident or " " in incident
                                  else f"{incident}T00:00:00")
            except ValueError:
                v.fail("date_of_incident", "date_of_incident bukan tanggal yang valid.")
        v.text("tags_raw", required=False)
        anonymous = v.flag("is_anonymous")
        secret = v.flag("is_secret")
        raw_atts = fields.get("attachments") or []
        if isinstance(raw_atts, str):
            raw_atts = [a for a in raw_atts.split(",") if a.strip()]
        if not isinstance(raw_atts, list):
            v.fail("attachments", "attachments harus berupa daftar id berkas.")
            raw_atts = []
        with self.lock:
            unknown = [str(a) for a in raw_atts if str(a).strip() not in self._uploads]
            if unknown:
                v.fail("attachments", f"Berkas tidak dikenal: {', '.join(unknown[:5])}.")
            v.check()
            assert title is not None and content is not None and channel is not None
            rid = self._next_id
            self._next_id += 1
            now = self.now()
            reporter = None
            if not anonymous:
                reporter = {k: fields.get(f"reporter_{k}") for k in ("name", "email", "phone")}
            data: dict[str, Any] = {
                "id": rid,
                "tracking_id": str(1_900_000 + rid * 3 + self._rng.randrange(3)),
                "title": title,
                "content": content,
                "category": CATEGORIES[category_id] if category_id else None,
                "location": LOCATION_TEXT[location_id] if location_id else None,
                "status_code": "1" if disposition else "0",
                "status_name": STATUS_NAMES["1" if disposition else "0"],
                "disposition_id": disposition,
                "disposition_name": self.institutions[disposition] if disposition else None,
                "is_anonymous": int(anonymous),
                "is_secret": int(secret),
                "channel": channel,
                "reporter": reporter,
                "attachments": [copy.deepcopy(self._uploads[str(a).strip()]) for a in raw_atts],
                "created_at": iso(now),
                "updated_at": iso(now),
            }
            self._insert(data, now)
            self.writes["complaints_created"] += 1
            return {"id": rid, "tracking_id": data["tracking_id"]}

    def _insert(self, data: dict[str, Any], updated: int) -> None:
        rid = data["id"]
        self._reports[rid] = data
        self._updated[rid] = updated
        self._history[rid] = _History(status_logs=[{
            "note": "Laporan diterima", "timestamp": data["created_at"],
            "status_code": data["status_code"], "status_name": data["status_name"]}])
        self._mark_listed(rid)

    # ------------------------------------------------------------------ admin

    def _validated(self, data: dict[str, Any]) -> None:
        try:
            RemoteComplaint.model_validate(data)
        except ValidationError as exc:
            raise SandboxValidationError(_pydantic_errors(exc)) from None

    def _apply_fields(self, data: dict[str, Any], fields: Mapping[str, Any]) -> None:
        unknown = sorted(set(fields) - REPORT_FIELDS)
        if unknown:
            raise SandboxValidationError(
                {k: [f"{k} tidak dapat diubah (bidang yang dikenal: "
                     f"{', '.join(sorted(REPORT_FIELDS))})."] for k in unknown})
        for key, value in fields.items():
            data[key] = copy.deepcopy(value)
        if "status_code" in fields:
            data["status_code"] = str(fields["status_code"])
            if "status_name" not in fields:
                data["status_name"] = STATUS_NAMES.get(data["status_code"], data["status_code"])
        if "disposition_id" in fields and "disposition_name" not in fields:
            did = fields["disposition_id"]
            data["disposition_name"] = self.institutions.get(did) if did is not None else None
            if did is not None and did not in self.institutions:
                raise SandboxValidationError(
                    {"disposition_id": [f"disposition_id {did!r} bukan instansi yang dikenal."]})
        if fields.get("is_anonymous") in (True, 1, "1") and "reporter" not in fields:
            data["reporter"] = None
        for key in ("created_at", "updated_at"):
            if key in fields:
                try:
                    data[key] = iso(_to_ts(fields[key]))
                except ValueError as exc:
                    raise SandboxValidationError({key: [str(exc)]}) from None

    def add_report(self, **fields: Any) -> dict[str, Any]:
        """Add one report: synthetic, with ``fields`` (wire names) overriding. Returns it.

        Disposed to us unless ``disposition_id`` says otherwise; created and updated now
        unless given.
        """
        with self.lock:
            now = self.now()
            rid = self._next_id
            data = self._factory.report(rid, now, now, status_code="1",
                                        disposition_id=self.institution_id)
            self._apply_fields(data, fields)
            self._validated(data)
            updated = _to_ts(data["updated_at"])
            if "created_at" not in fields and updated < now:
                data["created_at"] = data["updated_at"]
            self._next_id += 1
            self._insert(data, updated)
            return copy.deepcopy(data)

    def change_report(self, rid: int, **fields: Any) -> dict[str, Any]:
        """Change fields of a report (bumps updated_at to now unless it is given)."""
        with self.lock:
            data = self._get(rid)
            hist = self._history_of(rid)
            new = copy.deepcopy(data)
            self._apply_fields(new, fields)
            self._validated(new)
            now = self.now()
            if new["status_code"] != data["status_code"]:
                hist.status_logs.append({"note": "Status diubah", "timestamp": iso(now),
                                         "status_code": new["status_code"],
                                         "status_name": new["status_name"]})
            if new.get("disposition_id") != data.get("disposition_id") and \
                    new.get("disposition_id") is not None:
                hist.data_logs.append(self._data_log(
                    self._next_posted_id(), self._factory.admin_id, new["disposition_id"],
                    str(data["status_code"]), new["status_code"], "Disposisi", now))
            data.clear()
            data.update(new)
            self._json.pop(rid, None)
            self._mark_listed(rid)
            self._set_updated(rid, _to_ts(new["updated_at"]) if "updated_at" in fields else now)
            return copy.deepcopy(data)

    def random_changes(self, count: int) -> list[int]:
        """Change ``count`` random reports of the inbox the way citizens and admins do."""
        changed: list[int] = []
        with self.lock:
            if not self._index:
                return changed
            for _ in range(count):
                rid = self._index[self._rng.randrange(len(self._index))][1]
                data = self._reports[rid]
                kind = self._rng.randrange(3)
                code = str(data["status_code"])
                if kind == 0 and code.isdigit() and int(code) < 3:
                    self.change_report(rid, status_code=str(int(code) + 1))
                elif kind == 1:
                    atts = [*data["attachments"],
                            *self._attachment_meta([UploadedFile("foto_tambahan.jpg",
                                                                 150_000, "image/jpeg")])]
                    self.change_report(rid, attachments=atts)
                else:
                    self.change_report(rid, content=data["content"] + (
                        " Tambahan dari pelapor: sampai hari ini kondisinya masih sama."))
                changed.append(rid)
        return changed


def _pydantic_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        errors.setdefault(key, []).append(str(err["msg"]))
    return errors
