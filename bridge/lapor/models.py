"""Typed shapes of what LAPOR! sends and takes (see ../shared/LAPOR-API.md).

These are the contract between the client, the sandbox and the sync. Unknown fields
that LAPOR! adds are kept (``extra="allow"``) so the raw payload survives, but every
field the bridge reads is validated: a malformed item is quarantined, never guessed at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bridge.locale import JAKARTA

#: LAPOR!'s follow-up timestamps: local time (Asia/Jakarta) as ``d-m-Y H:i:s``.
LAPOR_LOCAL_FORMAT = "%d-%m-%Y %H:%M:%S"
_LOCAL = re.compile(r"(\d\d)-(\d\d)-(\d{4}) (\d\d):(\d\d):(\d\d)", re.ASCII)


def parse_remote_time(value: Any) -> datetime:
    """Parse a LAPOR! timestamp (ISO-8601 or ``d-m-Y H:i:s`` in Jakarta time) into UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        local = _LOCAL.fullmatch(text)
        try:
            if local is not None:
                # The local format's usual spelling, read without strptime (a tenth of
                # its cost; a first pull reads two or three of these per report).
                day, month, year, hour, minute, second = map(int, local.groups())
                dt = datetime(year, month, day, hour, minute, second, tzinfo=JAKARTA)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                dt = datetime.strptime(text, LAPOR_LOCAL_FORMAT).replace(tzinfo=JAKARTA)
            except ValueError:
                raise ValueError(f"not a date-time: {text[:40]!r}") from None
    else:
        raise ValueError(f"expected a date-time string, got {type(value).__name__}")
    if dt.tzinfo is None:
        # LAPOR! documents local time where it gives no offset.
        dt = dt.replace(tzinfo=JAKARTA)
    return dt.astimezone(UTC)


def format_local_time(dt: datetime) -> str:
    """Format a time the way LAPOR! writes follow-up times (Jakarta, ``d-m-Y H:i:s``)."""
    return dt.astimezone(JAKARTA).strftime(LAPOR_LOCAL_FORMAT)


RemoteTime = Annotated[datetime, BeforeValidator(parse_remote_time)]


def _str_code(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("expected a string or integer code")
    return str(value)


Code = Annotated[str, BeforeValidator(_str_code)]


def _flag(value: Any) -> bool:
    # LAPOR! (PHP) sends flags as 0/1 or "0"/"1" as often as true/false.
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return bool(int(value))
    raise ValueError("expected a boolean or 0/1")


Flag = Annotated[bool, BeforeValidator(_flag)]


def read_flag(value: Any) -> bool | None:
    """A LAPOR! flag as a bool, or None when the value is not one."""
    try:
        return _flag(value)
    except ValueError:
        return None


def _int_not_bool(value: Any) -> Any:
    # JSON's true is not the number 1; pydantic's lax mode would take it for 1 (report 1,
    # institution 1 = ours).
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return value


Int = Annotated[int, BeforeValidator(_int_not_bool)]


def drop_nul(value: Any) -> Any:
    """``value`` (decoded JSON) with every NUL character removed from its strings.

    NUL carries no meaning in a complaint, and PostgreSQL cannot store it in text. The
    client applies this to a response only when the body holds an escaped NUL at all, so
    the common page costs one byte scan instead of a walk over every value.
    """
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: drop_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [drop_nul(v) for v in value]
    return value


class WireModel(BaseModel):
    """What LAPOR! sends: unknown fields kept (the raw payload survives), immutable."""

    model_config = ConfigDict(extra="allow", frozen=True)
    #: The kind of object in the API profile's field table that this model reads.
    wire_kind: ClassVar[str] = "named"


class Named(WireModel):
    wire_kind: ClassVar[str] = "named"
    id: Int
    name: str


class Attachment(WireModel):
    wire_kind: ClassVar[str] = "attachment"
    id: Code
    name: str
    url: str | None = None
    size: Int | None = Field(default=None, ge=0)
    mime: str | None = None


class Reporter(WireModel):
    """The complainant as LAPOR! gives them to the handling admin (hidden when anonim)."""
    wire_kind: ClassVar[str] = "reporter"

    name: str | None = None
    email: str | None = None
    phone: str | None = None


class RemoteComplaint(WireModel):
    """One report as the inbox lists it."""
    wire_kind: ClassVar[str] = "complaint"

    id: Int = Field(ge=1)
    tracking_id: Code
    title: str = Field(max_length=500)
    content: str
    status_code: Code
    status_name: str
    disposition_id: Int | None = None
    disposition_name: str | None = None
    is_anonymous: Flag
    is_secret: Flag
    category: str | None = None
    location: str | None = None
    channel: Code | None = None
    reporter: Reporter | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    created_at: RemoteTime
    updated_at: RemoteTime


class StatusLog(WireModel):
    wire_kind: ClassVar[str] = "status_log"
    note: str | None = None
    timestamp: RemoteTime


class ComplaintDetail(WireModel):
    """``GET /complaints/{id}/complaint`` → ``results.data``."""
    wire_kind: ClassVar[str] = "complaint"

    id: Int
    status_code: Code
    status_name: str
    disposition_id: Int | None = None
    disposition_name: str | None = None
    status_logs: list[StatusLog] = Field(default_factory=list)


class RemoteFollowup(WireModel):
    wire_kind: ClassVar[str] = "followup"
    id: Int
    complaint_id: Int | None = None
    content: str
    created_at: RemoteTime
    institution_from: Named | None = None
    institution_to: Named | None = None
    is_secret: Flag = False
    attachments: list[Attachment] = Field(default_factory=list)


class Template(WireModel):
    wire_kind: ClassVar[str] = "template"
    id: Int
    code: str | None = None
    name: str | None = None
    content: str | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing: the valid items, the rejected ones, and where to go next."""

    items: list[T]
    rejected: list[RejectedItem] = Field(default_factory=list)
    #: The JSON object LAPOR! sent for each valid item, by the item's id (ids are unique
    #: within a listing): the raw payload as received, without serialising a model again.
    sources: dict[str, Any] = Field(default_factory=dict)
    next_page_url: str | None = None
    page: int = 1


class RejectedItem(BaseModel):
    """A listing item that failed validation: quarantined with the reason, never dropped."""

    remote_id: str | None
    reason: str
    payload: str


Page.model_rebuild()


class FollowupRequest(BaseModel):
    """What the bridge posts to ``followup/add`` (multipart fields)."""

    complaint_id: int
    user_id: int
    institution_from_id: int
    institution_to_id: int
    content: str
    template_code: str = ""
    rating: int = 0
    is_secret: bool = False


class ForwardRequest(BaseModel):
    """``process/{id}/reject`` with ``not_authority=1``: LAPOR!'s "bukan wewenang"."""

    complaint_id: int
    institution_id: int
    reason_description: str


class NewComplaintRequest(BaseModel):
    """``POST /complaints/complaint``: a local-origin case pushed up to LAPOR!."""

    title: str
    content: str
    channel: str
    classification_id: int = 2
    category_id: int | None = None
    location_id: int | None = None
    disposition_id: int | None = None
    date_of_incident: str | None = None
    tags_raw: str = ""
    attachments: list[str] = Field(default_factory=list)
    is_anonymous: bool = False
    is_secret: bool = False


def utcnow() -> datetime:
    return datetime.now(UTC)
