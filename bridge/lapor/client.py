"""The typed LAPOR! client: one method per endpoint, retries, pacing and validation.

Shapes are in :mod:`bridge.lapor.models`, failures in :mod:`bridge.lapor.errors`.

Retry policy (see ``LAPOR-API.md``: the API takes no idempotency key):

- GETs retry connection errors, timeouts, dropped connections, 429 and 5xx, with
  exponential backoff and jitter, honouring ``Retry-After``; after
  ``settings.max_attempts`` attempts they raise :class:`TransientError`.
- POSTs retry only what proves the request never took effect: a failed connection
  (refused, connect timeout, no pooled connection), 429, and 503 with ``Retry-After``.
  Anything else that may have reached LAPOR! (read or write timeout, 5xx, the connection
  dropped after sending) raises :class:`OutcomeUnknown` at once, so that the caller reads
  back before posting again instead of risking a duplicate follow-up.

Listings are validated item by item: an item that fails goes to ``Page.rejected`` with a
one-line reason and its raw JSON, and the rest of the page is returned.

Credentials live only in an :class:`httpx.Auth` that sets the two headers at send time.
They are never logged, and every text taken from LAPOR! that goes into a log line or an
exception is scrubbed of them first.
"""

from __future__ import annotations

import json
import logging
import math
import random
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from importlib import metadata
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from bridge.config import ENV_BEARER, ENV_TOKEN, ConfigError, LaporSettings, Secrets
from bridge.errors import BridgeError
from bridge.lapor.api_profile import ApiProfile, profile_of
from bridge.lapor.budget import RequestBudget
from bridge.lapor.errors import (
    AuthError,
    ClientRequestError,
    LaporError,
    MalformedOutcome,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    RemoteValidationError,
    TransientError,
)
from bridge.lapor.limits import (
    ACCEPT_ENCODING,
    ERROR_BODY_BYTES,
    BodyTooLarge,
    Deadline,
    DeadlineExceeded,
    UndecodableBody,
    buffered,
    read_body,
)
from bridge.lapor.models import (
    JAKARTA,
    ComplaintDetail,
    FollowupRequest,
    ForwardRequest,
    Named,
    NewComplaintRequest,
    Page,
    RejectedItem,
    RemoteComplaint,
    RemoteFollowup,
    Template,
    WireModel,
    drop_nul,
    read_flag,
)
from bridge.lapor.shapes import MISSING, Shapes, get_path
from bridge.redact import Scrubber

logger = logging.getLogger("bridge.lapor.client")

M = TypeVar("M", bound=WireModel)

#: A file to send: (file name, content, MIME type).
FileTuple = tuple[str, bytes, str]

#: Most pages a paginated listing may have before the client calls it a loop.
MAX_PAGES = 1000

#: How much of a text from LAPOR! goes into an error message.
_EXCERPT = 300

#: Failures after which the request may have arrived, and been applied, unanswered.
_LOST = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _version() -> str:
    try:
        return metadata.version("lapor-bridge")
    except metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"lapor-bridge/{_version()}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- credentials


def _secret(secret: SecretStr | None, key: str, env: str) -> SecretStr:
    """Check a credential without ever putting its value into the message."""
    if secret is None or not secret.get_secret_value():
        raise ConfigError("<secrets>", f"secrets.{key}", f"missing: set {env} or secrets_file")
    # An HTTP header cannot carry these, and httpx/h11 would quote the bad value in their
    # error message, leaking it.
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in secret.get_secret_value()):
        raise ConfigError(
            "<secrets>",
            f"secrets.{key}",
            "contains whitespace, a control character or a non-ASCII character "
            "(a trailing newline?); an HTTP header cannot carry it",
        )
    return secret


class _LaporAuth(httpx.Auth):
    """Adds LAPOR!'s two static headers to each request as it is sent."""

    def __init__(self, header: str, bearer: SecretStr, token: SecretStr) -> None:
        self._header = header
        self._bearer = bearer
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = f"Bearer {self._bearer.get_secret_value()}"
        request.headers["token"] = self._token.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return f"<LaporAuth header={self._header!r}>"


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Call:
    """One logical request (all of its attempts)."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    data: Mapping[str, str] | None = None
    files: Sequence[tuple[str, tuple[str | None, bytes, str | None]]] | None = None
    json: Any = None

    @property
    def idempotent(self) -> bool:
        return self.method in ("GET", "HEAD")

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def target(self) -> str:
        if not self.params:
            return self.path
        return f"{self.path}?{httpx.QueryParams(dict(self.params))}"


class _Retry(Exception):
    """An attempt that failed without effect and may be tried again."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class NonFiniteNumber(BridgeError, ValueError):
    """NaN, Infinity or a number beyond a double in a body: not JSON, and no store
    could keep it (PostgreSQL's JSON refuses it; orjson would write null)."""


def _refuse_constant(name: str) -> Any:
    raise NonFiniteNumber(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"the number {text[:40]} is beyond a double")
    return value


def _one_line(text: str, limit: int = _EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_repr(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def describe_validation(exc: ValidationError) -> str:
    """One line naming the first failing field and its problem, e.g. ``id: missing``."""
    errors = exc.errors(include_url=False)
    if not errors:
        return "invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "item"
    if first["type"] == "missing":
        problem = "missing"
    else:
        msg = str(first["msg"]).removeprefix("Value error, ")
        problem = msg[:1].lower() + msg[1:]
        # Our own validators already quote the value; pydantic's type errors do not.
        if first["type"] != "value_error":
            problem += f" (got {_short_repr(first.get('input'))})"
    more = len(errors) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return _one_line(f"{where}: {problem}", 500)


def _dotted(path: tuple[str, ...] | None) -> str:
    return ".".join(path) if path else "the body"


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _positive_id(value: int, name: str) -> int:
    # The id goes into a URL path: never let anything but a positive integer through.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


# --------------------------------------------------------------------------- the client


_per_thread = threading.local()


def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context, built once per thread and shared by the
    clients that thread opens: building one parses the whole CA bundle (about 12 ms of
    CPU), which a daemon paid on every job run, since each run opens its own client. Not
    shared between threads: httpcore sets the context's ALPN protocols on every new
    connection. The CA bundle (or ``SSL_CERT_FILE``) is read once per thread, so a daemon
    picks up a changed bundle when it restarts."""
    context: ssl.SSLContext | None = getattr(_per_thread, "tls_context", None)
    if context is None:
        context = _per_thread.tls_context = httpx.create_ssl_context()
    return context


class LaporClient:
    """Typed, paced and retrying access to the LAPOR! API.

    ``transport`` replaces the network (tests: ``httpx.MockTransport(respx_router.handler)``);
    ``budget`` paces requests (shared between clients to share a rate; default: a budget of
    ``settings.requests_per_second`` for this client alone); ``sleep`` is what the retry
    backoff sleeps with and ``now`` the wall clock that HTTP-date ``Retry-After`` values
    are measured against (both injectable for tests). Thread-safe.
    """

    def __init__(
        self,
        settings: LaporSettings,
        secrets: Secrets,
        *,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        bearer = _secret(secrets.bearer, "bearer", ENV_BEARER)
        token = _secret(secrets.token, "token", ENV_TOKEN)
        self.settings = settings
        #: Every wire shape: endpoints, envelopes, candidate paths (see api_profile).
        self.profile: ApiProfile = profile_of(settings)
        self.shapes = Shapes(self.profile)
        self.budget = budget if budget is not None else RequestBudget(settings.requests_per_second)
        self._sleep = sleep
        self._now = now
        self._scrub = Scrubber([bearer, token])
        self._random = random.Random()
        self._count_lock = threading.Lock()
        self._requests_made = 0
        self._http = httpx.Client(
            base_url=settings.base_url,
            transport=transport,
            verify=_tls_context(),
            auth=_LaporAuth(settings.bearer_header, bearer, token),
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            # Only what bridge.lapor.limits can inflate within bounds.
            headers={"User-Agent": USER_AGENT, "Accept": "application/json",
                     "Accept-Encoding": ACCEPT_ENCODING},
            # A redirect would carry the credentials wherever it points.
            follow_redirects=False,
        )

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LaporClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"LaporClient(base_url={self.settings.base_url!r}, "
            f"institution_id={self.settings.institution_id}, "
            f"requests_made={self._requests_made})"
        )

    @property
    def requests_made(self) -> int:
        """HTTP attempts made so far, retries included."""
        return self._requests_made

    # ----------------------------------------------------------------- reading

    def inbox_page(
        self,
        updated_since: datetime | None,
        page: int = 1,
        page_size: int | None = None,
    ) -> Page[RemoteComplaint]:
        """One page of the inbox: reports with ``updated_at >= updated_since``, ordered by
        (updated_at, id). ``updated_since`` must be timezone-aware; it is sent in Jakarta
        time at second resolution, rounded down so that nothing at the boundary is missed."""
        _positive_id(page, "page")
        size = self.settings.page_size if page_size is None else page_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1000:
            raise ValueError(f"page_size must be an integer from 1 to 1000, got {size!r}")
        params: dict[str, str | int] = {"page": page, "page_size": size}
        if updated_since is not None:
            if updated_since.tzinfo is None or updated_since.utcoffset() is None:
                raise ValueError("updated_since must be timezone-aware")
            params["updated_since"] = updated_since.astimezone(JAKARTA).isoformat(
                timespec="seconds"
            )
        path = self.profile.endpoint("inbox").path
        if not path:
            raise NotFound("GET (inbox): inbox not available: the API profile has no inbox "
                           "path (tracking known cases only)", method="GET", endpoint="")
        call = _Call("GET", path, params=params)
        return self._page(call, self._send(call), RemoteComplaint, "inbox", page=page,
                          seen=set())

    @property
    def has_inbox(self) -> bool:
        """Whether the profile names an inbox listing at all."""
        return bool(self.profile.endpoint("inbox").path)

    def complaint(self, complaint_id: int) -> ComplaintDetail:
        """The detail of one report. The disposition history (the profile's ``logs``) is
        kept on the model as the extra attribute ``data_logs`` (raw list)."""
        call, body, data = self._detail(complaint_id)
        fields = self.shapes.normalize("complaint", data)
        logs_at = self.shapes.envelope("complaint", "logs")
        logs = get_path(body, logs_at) if logs_at else MISSING
        if isinstance(logs, list):
            fields["data_logs"] = logs
        if read_flag(fields.get("is_anonymous")) is True:
            fields["reporter"] = None
        try:
            return ComplaintDetail.model_validate(fields)
        except ValidationError as exc:
            where = _dotted(self.shapes.envelope("complaint", "item"))
            raise self._malformed(
                call, f"{where}: {self._reason('complaint', exc)}") from None

    def report(self, complaint_id: int) -> tuple[RemoteComplaint | None, RejectedItem | None,
                                                 dict[str, Any]]:
        """One report read through its detail, for tracking by id: the profile's item
        validated as a listing item would be (the item, or the rejection with its reason),
        and the object as LAPOR! sent it, without the reporter's identity when the report
        hides it. Raises :class:`NotFound` for an unknown id."""
        _, _, data = self._detail(complaint_id)
        item, rejected = self._item(data, RemoteComplaint, set())
        return item, rejected, self.shapes.private(data)

    def _detail(self, complaint_id: int) -> tuple[_Call, dict[str, Any], dict[str, Any]]:
        """The detail endpoint's call, whole answer and the complaint object in it."""
        call = _Call("GET", self._path(self.profile.endpoint("complaint").path, complaint_id))
        body = self._send(call)
        where = self.shapes.envelope("complaint", "item")
        data = get_path(body, where) if where else body
        if not isinstance(data, dict):
            raise self._malformed(
                call, f"{_dotted(where)} is {_json_type(data)}, expected an object")
        return call, body, data

    def followup_listing(
        self, complaint_id: int, *, max_pages: int = MAX_PAGES
    ) -> Page[RemoteFollowup]:
        """Every follow-up of a report, all pages, with the items that failed validation
        in ``rejected`` (raw JSON kept). Use this for a read-back after
        :class:`OutcomeUnknown`: a rejected item may still be the bridge's own post, so
        search the rejected payloads for the marker too before posting again."""
        path = self._path(self.profile.endpoint("followups").path, complaint_id)
        return self._collect("followups", path, RemoteFollowup, {}, max_pages)

    def followups(self, complaint_id: int) -> list[RemoteFollowup]:
        """Every valid follow-up of a report (all pages). Items that fail validation are
        left out with a warning naming them; see :meth:`followup_listing` for those."""
        listing = self.followup_listing(complaint_id)
        self._warn_rejected(f"complaint {complaint_id}: follow-up", listing.rejected)
        return listing.items

    def institutions(self) -> list[Named]:
        """LAPOR!'s external institutions (all pages); invalid items skipped with a warning."""
        listing = self._collect("institutions", self.profile.endpoint("institutions").path,
                                Named, {"page_size": 1000}, MAX_PAGES)
        self._warn_rejected("institution", listing.rejected)
        return listing.items

    def templates(self) -> list[Template]:
        """LAPOR!'s reply templates (all pages); invalid items skipped with a warning."""
        listing = self._collect("templates", self.profile.endpoint("templates").path,
                                Template, {"page_size": 1000}, MAX_PAGES)
        self._warn_rejected("template", listing.rejected)
        return listing.items

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None
                 ) -> tuple[int, dict[str, Any]]:
        """GET any path under ``base_url`` with this client's credentials, pacing and
        retries: ``(200, decoded body)``, or the typed error. For diagnostics (probe)."""
        return 200, self._send(_Call("GET", path, params=params))

    def scrub(self, text: str) -> str:
        """``text`` with this client's credentials masked."""
        return self._scrub(text)

    # ----------------------------------------------------------------- writing

    def add_followup(self, req: FollowupRequest, attachments: Sequence[FileTuple] = ()
                     ) -> int | None:
        """Post a follow-up (files as ``attachment[i]``); return its new id, or None when
        the profile lets LAPOR!'s answer go without one.

        The content is sent as given: the caller appends the bridge's marker. Raises
        :class:`OutcomeUnknown` when the post may have been applied."""
        fields: dict[str, Any] = {
            "complaint_id": req.complaint_id,
            "user_id": req.user_id,
            "institution_from_id": req.institution_from_id,
            "institution_to_id": req.institution_to_id,
            "template_code": req.template_code,
            "rating": req.rating,
            "is_secret": req.is_secret,
            "content": req.content,
        }
        endpoint = self.profile.endpoint("followup_add")
        call = self._write_call("followup_add", endpoint.path, fields,
                                self._file_parts("attachment[{i}]", attachments))
        return self._new_id(call, self._send(call), "followup_add")

    def forward(self, req: ForwardRequest) -> None:
        """LAPOR!'s "bukan wewenang": move the report's disposition to another body."""
        path = self._path(self.profile.endpoint("forward").path, req.complaint_id)
        fields: dict[str, Any] = {
            "is_request": 1,
            "reason": req.institution_id,
            "reason_description": req.reason_description,
            "not_authority": 1,
        }
        call = self._write_call("forward", path, fields)
        moved = get_path(self._send(call), ("results", "data"))
        if isinstance(moved, dict) and moved.get("disposition_id") not in (
            None,
            req.institution_id,
            str(req.institution_id),
        ):
            logger.warning(
                "%s: LAPOR! reports disposition %s after forwarding to %s",
                call.label,
                self._scrub(_short_repr(moved.get("disposition_id"))),
                req.institution_id,
            )

    def create_complaint(self, req: NewComplaintRequest) -> int:
        """Push a local-origin report up to LAPOR!; return its new id. The channel,
        the upload ids and the flags are written as the profile's ``[create]`` says."""
        shape = self.profile.create
        fields: dict[str, Any] = req.model_dump(exclude_none=True)
        if shape.channel == "code":
            code = shape.channel_codes.get(req.channel, shape.default_channel_code)
            if code is None:
                raise ConfigError("<config>", "lapor.api.create.channel_codes",
                                  f"no LAPOR! code for channel {req.channel!r}")
            fields["channel"] = code
        if shape.attachments == "json-string":
            fields["attachments"] = json.dumps([int(a) if a.isdigit() else a
                                                for a in req.attachments],
                                               separators=(",", ":"))
        if shape.flags == "int":
            fields = {k: int(v) if isinstance(v, bool) else v for k, v in fields.items()}
        call = self._write_call("create", self.profile.endpoint("create").path, fields)
        new_id = self._new_id(call, self._send(call), "create")
        if new_id is None:
            raise self._malformed(call, "no id of the new complaint in the answer (tried "
                                  + " | ".join(self.profile.endpoint("create").new_id) + ")")
        return new_id

    def upload_attachments(self, files: Sequence[FileTuple]) -> list[str]:
        """Upload files (multipart ``attachments[]``); return their ids in order."""
        if not files:
            return []
        call = _Call(
            "POST",
            self.profile.endpoint("upload").path,
            files=list(self._file_parts("attachments[]", files)),
        )
        where = self.shapes.envelope("upload", "list")
        body = self._send(call)
        docs = get_path(body, where) if where else body
        if not isinstance(docs, list):
            raise self._malformed(call, f"{_dotted(where)} is {_json_type(docs)}, "
                                  "expected a list")
        ids: list[str] = []
        for n, doc in enumerate(docs):
            doc_id = doc.get("id") if isinstance(doc, dict) else None
            if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or doc_id == "":
                raise self._malformed(call, f"{_dotted(where)}[{n}].id: missing or not an id")
            ids.append(str(doc_id))
        if len(ids) != len(files):
            raise self._malformed(call, f"sent {len(files)} files, LAPOR! returned {len(ids)} ids")
        return ids

    # ----------------------------------------------------------------- request machinery

    def _send(self, call: _Call) -> dict[str, Any]:
        """Run a call with retries; return its ``results`` object."""
        attempts = 0

        def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            return self._attempt(call, attempts)

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._sleep,
            before_sleep=partial(self._log_retry, call),
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except _Retry as exc:
            raise TransientError(
                f"{call.label}: gave up after {attempts} attempt{'s' if attempts > 1 else ''}: "
                f"{exc.reason}",
                retry_after=exc.retry_after,
                attempts=attempts,
                method=call.method,
                endpoint=call.path,
                status=exc.status,
            ) from None
        return self._results(call, response)

    def _attempt(self, call: _Call, number: int) -> httpx.Response:
        self.budget.acquire()
        with self._count_lock:
            self._requests_made += 1
        started = time.perf_counter()
        # Started after the budget's wait: pacing is ours, the deadline is LAPOR!'s.
        deadline = Deadline(self.settings.request_deadline)
        try:
            try:
                request = self._http.build_request(
                    call.method,
                    call.path,
                    params=dict(call.params) if call.params else None,
                    data=dict(call.data) if call.data else None,
                    files=list(call.files) if call.files else None,
                    json=call.json,
                    timeout=deadline.clamp(self._http.timeout),
                    extensions={"trace": deadline.trace},
                )
                if call.files:
                    # A multipart body streams part by part, one socket write each (35 for
                    # a follow-up); read into memory first, it goes out in one. The parts
                    # are in memory already.
                    request.read()
                response = self._http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached LAPOR!: safe to retry even a POST.
                self._log_request(call, self._exc_name(exc), started)
                raise _Retry(f"could not connect ({self._describe_exc(exc)})") from None
            except _LOST as exc:
                raise self._lost(call, exc, number, deadline, started) from None
            except httpx.HTTPError as exc:
                # Local protocol errors, unsupported URL scheme, proxy failures: nothing sent.
                self._log_request(call, self._exc_name(exc), started)
                raise LaporError(
                    f"{call.label}: request failed ({self._describe_exc(exc)})",
                    method=call.method,
                    endpoint=call.path,
                ) from None
            response = self._read(call, response, number, deadline, started)
        finally:
            deadline.close()

        status = response.status_code
        self._log_request(call, str(status), started)
        if 200 <= status < 300:
            return response
        if status == 429 or status >= 500:
            retry_after = self._retry_after(call, response)
            reason = f"HTTP {status}"
            remote, _ = self._error_body(response)
            if remote:
                reason += f" ({self._excerpt(remote, 120)})"
            if call.idempotent or status == 429 or (status == 503 and retry_after is not None):
                raise _Retry(reason, status, retry_after)
            raise self._unknown(call, reason, number, status, retry_after)
        raise self._refusal(call, response)

    def _read(
        self,
        call: _Call,
        response: httpx.Response,
        number: int,
        deadline: Deadline,
        started: float,
    ) -> httpx.Response:
        """The streamed ``response`` read whole within the size limits and the deadline,
        as an in-memory response. An error answer is read only in part: its status says
        what happened, and an excerpt of its body is all that is shown."""
        ok = 200 <= response.status_code < 300
        settings = self.settings
        try:
            deadline.watch(response.extensions.get("network_stream"))
            body = read_body(
                response,
                max_wire=settings.max_response_bytes,
                max_decoded=settings.max_decoded_bytes if ok else ERROR_BODY_BYTES,
                deadline=deadline,
                truncate=not ok,
            )
        except BodyTooLarge as exc:
            self._log_request(call, "too large", started)
            raise self._malformed(call, str(exc)) from None
        except (UndecodableBody, httpx.DecodingError) as exc:
            self._log_request(call, self._exc_name(exc), started)
            raise self._malformed(call, f"undecodable body ({self._describe_exc(exc)})"
                                  ) from None
        except (DeadlineExceeded, *_LOST) as exc:
            raise self._lost(call, exc, number, deadline, started) from None
        finally:
            # The watchdog first: once the response is closed its connection may serve
            # another request, which a late watchdog must not shut down.
            deadline.close()
            response.close()
        return buffered(response, body)

    def _lost(
        self, call: _Call, exc: Exception, number: int, deadline: Deadline, started: float
    ) -> Exception:
        """The request may have arrived and been applied before its answer was lost:
        a GET is tried again, a POST's outcome is unknown."""
        self._log_request(call, self._exc_name(exc), started)
        if deadline.expired:
            what = f"no complete answer within lapor.request_deadline = {deadline.seconds:g} s"
        else:
            what = f"no complete answer ({self._describe_exc(exc)})"
        if not call.idempotent:
            return self._unknown(call, what, number, None, None)
        return _Retry(what)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            return exc.retry_after
        # Exponential, with "equal jitter": at least half the step, so waits still grow,
        # and spread so that several bridges do not retry in lockstep.
        step = min(
            self.settings.backoff_max,
            self.settings.backoff_initial * 2.0 ** min(state.attempt_number - 1, 60),
        )
        return self._random.uniform(step / 2, step)

    def _log_retry(self, call: _Call, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        reason = exc.reason if isinstance(exc, _Retry) else type(exc).__name__
        asked = isinstance(exc, _Retry) and exc.retry_after is not None
        logger.warning(
            "%s: %s (attempt %d of %d); retrying in %.2f s%s",
            call.label,
            reason,
            state.attempt_number,
            self.settings.max_attempts,
            wait,
            " as Retry-After asks" if asked else "",
        )

    def _log_request(self, call: _Call, outcome: str, started: float) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.0f ms",
                call.method,
                call.target(),
                outcome,
                (time.perf_counter() - started) * 1000,
            )

    def _retry_after(self, call: _Call, response: httpx.Response) -> float | None:
        """``Retry-After`` in seconds (delta-seconds or HTTP-date), clamped to
        [0, 10 * backoff_max]; ``None`` if absent or unreadable."""
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        text = value.strip()
        seconds: float
        try:
            seconds = float(text)
            if not math.isfinite(seconds):
                raise ValueError(text)
        except ValueError:
            try:
                when = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                logger.warning(
                    "%s: ignoring unreadable Retry-After %s",
                    call.label,
                    self._excerpt(repr(text), 40),
                )
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - self._now()).total_seconds()
        return min(self.settings.backoff_max * 10, max(0.0, seconds))

    def _results(self, call: _Call, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json(parse_constant=_refuse_constant, parse_float=_finite_float)
        except NonFiniteNumber as exc:
            raise self._malformed(call, f"HTTP {response.status_code} body is not JSON: {exc}"
                                  ) from None
        except RecursionError:
            raise self._malformed(call, f"HTTP {response.status_code} body is JSON nested too "
                                  "deeply to read") from None
        except ValueError:
            kind = response.headers.get("Content-Type", "no Content-Type")
            start = self._excerpt(response.text, 60) if response.content else ""
            raise self._malformed(
                call,
                f"HTTP {response.status_code} body is not JSON ({self._excerpt(kind, 60)}, "
                f"{len(response.content)} bytes" + (f", starts with {start!r})" if start else ")"),
            ) from None
        if not isinstance(body, dict):
            raise self._malformed(call, f"{_json_type(body)} at top level, expected an object")
        # JSON can carry NUL only escaped (a raw control character is not JSON).
        return drop_nul(body) if b"\\u0000" in response.content else body

    def _error_body(self, response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
        """LAPOR!'s ``message`` and ``errors`` from a refusal, scrubbed; the text of the
        body when it is not JSON."""
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return self._excerpt(response.text), {}
        if not isinstance(body, dict):
            return self._excerpt(json.dumps(body, ensure_ascii=False)), {}
        raw_message = body.get("message")
        message = self._excerpt(str(raw_message)) if raw_message else ""
        errors: dict[str, list[str]] = {}
        raw_errors = body.get("errors")
        if isinstance(raw_errors, dict):
            for field, reasons in raw_errors.items():
                items = reasons if isinstance(reasons, list) else [reasons]
                errors[self._excerpt(str(field))] = [self._excerpt(str(r)) for r in items]
        return message, errors

    def _refusal(self, call: _Call, response: httpx.Response) -> LaporError:
        status = response.status_code
        message, errors = self._error_body(response)
        said = f": {message}" if message else ""
        if status in (401, 403):
            return AuthError(
                f"{call.label}: HTTP {status}: LAPOR! refused the credentials "
                f"(check the bearer and token secrets and lapor.bearer_header){said}",
                method=call.method,
                endpoint=call.path,
                status=status,
            )
        if status == 404:
            return NotFound(
                f"{call.label}: HTTP 404: not found{said}",
                method=call.method,
                endpoint=call.path,
                status=status,
            )
        if status == 422:
            details = "; ".join(f"{field}: {' '.join(reasons)}" for field, reasons in errors.items())
            text = "; ".join(part for part in (message, details) if part) or "no reason given"
            return RemoteValidationError(
                f"{call.label}: HTTP 422: LAPOR! refused the input: {self._excerpt(text, 1000)}",
                errors=errors,
                remote_message=message,
                method=call.method,
                endpoint=call.path,
                status=status,
            )
        if 300 <= status < 400:
            return ClientRequestError(
                f"{call.label}: HTTP {status}: unexpected redirect (check lapor.base_url)",
                method=call.method,
                endpoint=call.path,
                status=status,
            )
        return ClientRequestError(
            f"{call.label}: HTTP {status}{said}",
            method=call.method,
            endpoint=call.path,
            status=status,
        )

    def _malformed(self, call: _Call, what: str) -> MalformedResponse:
        message = f"{call.label}: malformed response: {what}"
        if call.idempotent:
            return MalformedResponse(message, method=call.method, endpoint=call.path)
        return MalformedOutcome(
            message + "; the request was probably applied: read back before posting again",
            method=call.method,
            endpoint=call.path,
        )

    def _unknown(
        self,
        call: _Call,
        what: str,
        attempts: int,
        status: int | None,
        retry_after: float | None,
    ) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"{call.label}: {what}; the request may have been applied: read back before "
            "posting again",
            retry_after=retry_after,
            attempts=attempts,
            method=call.method,
            endpoint=call.path,
            status=status,
        )

    def _describe_exc(self, exc: Exception) -> str:
        text = str(exc)
        name = self._exc_name(exc)
        return f"{name}: {self._excerpt(text, 200)}" if text else name

    def _excerpt(self, text: str, limit: int = _EXCERPT) -> str:
        """``text`` on one line and at most ``limit`` characters, secrets masked first."""
        return self._scrub.excerpt(text, limit)

    @staticmethod
    def _exc_name(exc: Exception) -> str:
        return type(exc).__name__

    # ----------------------------------------------------------------- parsing

    def _page(
        self,
        call: _Call,
        body: dict[str, Any],
        model: type[M],
        endpoint: str,
        *,
        page: int,
        seen: set[str],
    ) -> Page[M]:
        shapes = self.shapes
        list_at = shapes.envelope(endpoint, "list")
        data = get_path(body, list_at) if list_at else body
        if not isinstance(data, list):
            got = _json_type(data) if data is not MISSING else "missing"
            keys = (f" (top-level keys {self._excerpt(str(sorted(map(str, body))), 120)})"
                    if data is MISSING else "")
            raise self._malformed(call, f"{_dotted(list_at)} is {got}, expected a list{keys}")
        self._check_item_count(call, len(data))
        next_at = shapes.envelope(endpoint, "next")
        next_url = get_path(body, next_at) if next_at else None
        if next_url is MISSING:
            next_url = None
        if next_url is not None and not isinstance(next_url, str):
            raise self._malformed(
                call, f"{_dotted(next_at)} is {_json_type(next_url)}, expected a string"
            )
        page_at = shapes.envelope(endpoint, "page")
        current = get_path(body, page_at) if page_at else MISSING
        if current is MISSING or current is None:
            current = page
        if isinstance(current, str) and current.isdigit():
            current = int(current)
        if isinstance(current, bool) or not isinstance(current, int):
            raise self._malformed(
                call, f"{_dotted(page_at)} is {_short_repr(current)}, expected a number"
            )
        items: list[M] = []
        rejected: list[RejectedItem] = []
        sources: dict[str, Any] = {}
        for raw in data:
            item, refusal = self._item(raw, model, seen)
            if refusal is not None:
                rejected.append(refusal)
            elif item is not None:
                items.append(item)
                sources[str(getattr(item, "id", ""))] = (
                    shapes.private(raw) if model.wire_kind == "complaint" else raw)
        return Page(items=items, rejected=rejected, sources=sources,
                    next_page_url=next_url or None, page=current)

    def parse_item(self, raw: Any, model: type[M]) -> tuple[M | None, RejectedItem | None]:
        """One listing item through the profile: the model, or the reason it is refused
        (with its payload, without identity where the report hides it)."""
        return self._item(raw, model, set())

    def _check_item_count(self, call: _Call, count: int) -> None:
        """More items than the page size asked for is a malformed page (a server that
        ignores page_size, or worse); with no size asked, ``max_page_items`` bounds it."""
        asked = (call.params or {}).get("page_size")
        if isinstance(asked, int) and not isinstance(asked, bool):
            if count > asked:
                raise self._malformed(
                    call, f"the page has {count:,} items, more than the {asked:,} asked for "
                    "(page_size)"
                )
        elif count > self.settings.max_page_items:
            raise self._malformed(
                call, f"the page has {count:,} items, over lapor.max_page_items = "
                f"{self.settings.max_page_items:,}"
            )

    def _item(
        self, raw: Any, model: type[M], seen: set[str]
    ) -> tuple[M | None, RejectedItem | None]:
        if not isinstance(raw, dict):
            return None, RejectedItem(
                remote_id=None, reason=f"item: expected an object, got {_json_type(raw)}",
                payload=json.dumps(raw, ensure_ascii=False),
            )
        kind = model.wire_kind
        fields = self.shapes.normalize(kind, raw)
        raw_id = fields.get("id")
        remote_id = (
            str(raw_id)
            if isinstance(raw_id, (str, int, float)) and not isinstance(raw_id, bool)
            else None
        )

        def reject(reason: str) -> tuple[M | None, RejectedItem]:
            # Serialised only here: most items pass, and their JSON is not needed.
            kept = self.shapes.private(raw) if kind == "complaint" else raw
            return None, RejectedItem(remote_id=remote_id, reason=self._scrub(reason),
                                      payload=json.dumps(kept, ensure_ascii=False))

        content = fields.get("content")
        limit = self.settings.max_content_chars
        if isinstance(content, str) and len(content) > limit:
            return reject(f"content: {len(content):,} characters, over the limit of {limit:,}")
        if kind == "complaint" and read_flag(fields.get("is_anonymous")) is True:
            # An anonim reporter is hidden from everyone, ourselves included.
            fields["reporter"] = None
        try:
            item = model.model_validate(fields)
        except ValidationError as exc:
            return reject(self._reason(kind, exc))
        key = str(getattr(item, "id", remote_id))
        if key in seen:
            return reject(f"id: {key} repeats an earlier item of this listing")
        seen.add(key)
        return item, None

    def _reason(self, kind: str, exc: ValidationError) -> str:
        """The one-line reason, naming the paths tried for a field found nowhere and never
        quoting a reporter's identity."""
        errors = exc.errors(include_url=False)
        first = errors[0] if errors else None
        if first is not None and first["loc"]:
            name = str(first["loc"][0])
            if first["type"] == "missing" and name in self.profile.fields.get(kind, {}):
                more = len(errors) - 1
                extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
                return f"{name}: missing (tried {self.shapes.tried(kind, name)}){extra}"
            if name == "reporter":
                return _one_line(f"{'.'.join(map(str, first['loc']))}: "
                                 f"{str(first['msg']).removeprefix('Value error, ')}", 500)
        return describe_validation(exc)

    def _new_id(self, call: _Call, body: dict[str, Any], endpoint: str) -> int | None:
        value, where = self.shapes.new_id(endpoint, body)
        if value is MISSING:
            if not self.profile.endpoint(endpoint).id_required:
                return None
            tried = " | ".join(self.profile.endpoint(endpoint).new_id)
            raise self._malformed(call, f"no id of the new object in the answer (tried {tried})")
        new_id = value
        if isinstance(new_id, str) and new_id.isdigit():
            new_id = int(new_id)
        if isinstance(new_id, bool) or not isinstance(new_id, int) or new_id < 1:
            raise self._malformed(
                call, f"{where} is {_short_repr(new_id)}, expected a positive integer"
            )
        return new_id

    def _write_call(self, endpoint: str, path: str, fields: Mapping[str, Any],
                    files: Sequence[tuple[str, tuple[str | None, bytes, str | None]]] = ()
                    ) -> _Call:
        """A POST with ``fields`` in the profile's encoding: a JSON body keeps numbers and
        booleans as they are; a form or multipart body carries text (flags as 1/0)."""
        encoding = self.profile.endpoint(endpoint).encoding
        if encoding == "json":
            if files:
                raise ConfigError("<config>", f"lapor.api.endpoints.{endpoint}.encoding",
                                  "files cannot travel in a JSON body; use multipart")
            return _Call("POST", path, json=dict(fields))
        text = {name: _form_text(value) for name, value in fields.items()}
        if encoding == "multipart" or files:
            return _Call("POST", path, files=[*self._form_parts(text), *files])
        return _Call("POST", path, data=text)

    def _collect(
        self, endpoint: str, path: str, model: type[M], params: Mapping[str, str | int],
        max_pages: int,
    ) -> Page[M]:
        """Read every page of a listing by page number, guarding against loops."""
        items: list[M] = []
        rejected: list[RejectedItem] = []
        sources: dict[str, Any] = {}
        seen_ids: set[str] = set()
        followed: set[str] = set()
        page = 1
        for read in range(1, max_pages + 1):
            call = _Call("GET", path, params={**params, "page": page})
            current = self._page(call, self._send(call), model, endpoint, page=page,
                                 seen=seen_ids)
            items.extend(current.items)
            rejected.extend(current.rejected)
            sources.update(current.sources)
            link = current.next_page_url
            if not link:
                return Page(items=items, rejected=rejected, sources=sources,
                            next_page_url=None, page=page)
            if link in followed:
                raise self._malformed(
                    call, f"next_page_url loops: {self._scrub(_one_line(link, 200))!r} came twice"
                )
            followed.add(link)
            following = self._page_number(call, link)
            if following <= page:
                raise self._malformed(
                    call, f"next_page_url loops: page {page} links back to page {following}"
                )
            if read == max_pages:
                break
            page = following
        raise self._malformed(call, f"more than {max_pages} pages; a next_page_url loop?")

    def _page_number(self, call: _Call, link: str) -> int:
        # Only the page number is taken from the link: the request goes to base_url as
        # configured, so a link to another host (a gateway's internal address, or worse)
        # never receives the credentials.
        values = parse_qs(urlsplit(link).query).get("page")
        if not values:
            raise self._malformed(
                call, f"next_page_url has no page number: {self._scrub(_one_line(link, 200))!r}"
            )
        try:
            return int(values[0])
        except ValueError:
            raise self._malformed(
                call, f"next_page_url page is not a number: {self._scrub(_short_repr(values[0]))}"
            ) from None

    def _warn_rejected(self, what: str, rejected: Sequence[RejectedItem]) -> None:
        for item in rejected:
            logger.warning(
                "%s %s skipped: %s", what, item.remote_id or "(no id)", self._scrub(item.reason)
            )

    @staticmethod
    def _path(template: str, complaint_id: int) -> str:
        return template.replace("{id}", str(_positive_id(complaint_id, "complaint_id")))

    @staticmethod
    def _form_parts(
        fields: Mapping[str, str],
    ) -> list[tuple[str, tuple[str | None, bytes, str | None]]]:
        # A part without a file name is a plain form field; sending the fields this way
        # keeps the body multipart even when there is no attachment.
        return [(name, (None, value.encode("utf-8"), None)) for name, value in fields.items()]

    @staticmethod
    def _file_parts(
        name: str, files: Sequence[FileTuple]
    ) -> list[tuple[str, tuple[str | None, bytes, str | None]]]:
        return [
            (name.format(i=i), (filename, content, mime or "application/octet-stream"))
            for i, (filename, content, mime) in enumerate(files)
        ]


__all__ = ["MAX_PAGES", "USER_AGENT", "FileTuple", "LaporClient", "describe_validation"]
