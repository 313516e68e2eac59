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
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from bridge.config import ENV_BEARER, ENV_TOKEN, ConfigError, LaporSettings, Secrets
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
    drop_nul,
)
from bridge.redact import Scrubber

logger = logging.getLogger("bridge.lapor.client")

M = TypeVar("M", bound=BaseModel)

#: A file to send: (file name, content, MIME type).
FileTuple = tuple[str, bytes, str]

#: Most pages a paginated listing may have before the client calls it a loop.
MAX_PAGES = 1000

#: How much of a text from LAPOR! goes into an error message.
_EXCERPT = 300


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


class NonFiniteNumber(ValueError):
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


def _positive_id(value: int, name: str) -> int:
    # The id goes into a URL path: never let anything but a positive integer through.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


# --------------------------------------------------------------------------- the client


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
            auth=_LaporAuth(settings.bearer_header, bearer, token),
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
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
        call = _Call("GET", self.settings.inbox_path, params=params)
        return self._page(call, self._send(call), RemoteComplaint, page=page, seen=set())

    def complaint(self, complaint_id: int) -> ComplaintDetail:
        """The detail of one report. ``results.data_logs`` (the disposition history) is
        kept on the model as the extra attribute ``data_logs`` (raw list)."""
        path = self._path(self.settings.complaint_path, complaint_id)
        call = _Call("GET", path)
        results = self._send(call)
        data = results.get("data")
        if not isinstance(data, dict):
            raise self._malformed(call, f"results.data is {_json_type(data)}, expected an object")
        raw = dict(data)
        logs = results.get("data_logs")
        if logs is not None and "data_logs" not in raw:
            raw["data_logs"] = logs
        try:
            return ComplaintDetail.model_validate(raw)
        except ValidationError as exc:
            raise self._malformed(call, f"results.data: {describe_validation(exc)}") from None

    def report(self, complaint_id: int) -> tuple[RemoteComplaint | None, RejectedItem | None,
                                                 dict[str, Any]]:
        """One report read through its detail, for tracking by id: ``results.data``
        validated as a listing item would be (the item, or the rejection with its reason),
        and the object as LAPOR! sent it. Raises :class:`NotFound` for an unknown id."""
        call = _Call("GET", self._path(self.settings.complaint_path, complaint_id))
        data = self._send(call).get("data")
        if not isinstance(data, dict):
            raise self._malformed(call, f"results.data is {_json_type(data)}, expected an object")
        item, rejected = self._item(data, RemoteComplaint, set())
        return item, rejected, data

    def followup_listing(
        self, complaint_id: int, *, max_pages: int = MAX_PAGES
    ) -> Page[RemoteFollowup]:
        """Every follow-up of a report, all pages, with the items that failed validation
        in ``rejected`` (raw JSON kept). Use this for a read-back after
        :class:`OutcomeUnknown`: a rejected item may still be the bridge's own post, so
        search the rejected payloads for the marker too before posting again."""
        path = self._path(self.settings.followups_path, complaint_id)
        return self._collect(path, RemoteFollowup, {}, max_pages)

    def followups(self, complaint_id: int) -> list[RemoteFollowup]:
        """Every valid follow-up of a report (all pages). Items that fail validation are
        left out with a warning naming them; see :meth:`followup_listing` for those."""
        listing = self.followup_listing(complaint_id)
        self._warn_rejected(f"complaint {complaint_id}: follow-up", listing.rejected)
        return listing.items

    def institutions(self) -> list[Named]:
        """LAPOR!'s external institutions (all pages); invalid items skipped with a warning."""
        listing = self._collect(
            self.settings.institutions_path, Named, {"page_size": 1000}, MAX_PAGES
        )
        self._warn_rejected("institution", listing.rejected)
        return listing.items

    def templates(self) -> list[Template]:
        """LAPOR!'s reply templates (all pages); invalid items skipped with a warning."""
        listing = self._collect(
            self.settings.templates_path, Template, {"page_size": 1000}, MAX_PAGES
        )
        self._warn_rejected("template", listing.rejected)
        return listing.items

    # ----------------------------------------------------------------- writing

    def add_followup(self, req: FollowupRequest, attachments: Sequence[FileTuple] = ()) -> int:
        """Post a follow-up (multipart, files as ``attachment[i]``); return its new id.

        The content is sent as given: the caller appends the bridge's marker. Raises
        :class:`OutcomeUnknown` when the post may have been applied."""
        fields = {
            "complaint_id": str(req.complaint_id),
            "user_id": str(req.user_id),
            "institution_from_id": str(req.institution_from_id),
            "institution_to_id": str(req.institution_to_id),
            "template_code": req.template_code,
            "rating": str(req.rating),
            "is_secret": "1" if req.is_secret else "0",
            "content": req.content,
        }
        files = [*self._form_parts(fields), *self._file_parts("attachment[{i}]", attachments)]
        call = _Call("POST", self.settings.followup_add_path, files=files)
        return self._new_id(call, self._send(call))

    def forward(self, req: ForwardRequest) -> None:
        """LAPOR!'s "bukan wewenang": move the report's disposition to another body."""
        path = self._path(self.settings.reject_path, req.complaint_id)
        data = {
            "is_request": "1",
            "reason": str(req.institution_id),
            "reason_description": req.reason_description,
            "not_authority": "1",
        }
        call = _Call("POST", path, data=data)
        results = self._send(call)
        moved = results.get("data")
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
        """Push a local-origin report up to LAPOR! (JSON body); return its new id."""
        call = _Call("POST", self.settings.create_path, json=req.model_dump(exclude_none=True))
        return self._new_id(call, self._send(call))

    def upload_attachments(self, files: Sequence[FileTuple]) -> list[str]:
        """Upload files (multipart ``attachments[]``); return their ids in order."""
        if not files:
            return []
        call = _Call(
            "POST",
            self.settings.upload_path,
            files=list(self._file_parts("attachments[]", files)),
        )
        results = self._send(call)
        docs = results.get("docs")
        if not isinstance(docs, list):
            raise self._malformed(call, f"results.docs is {_json_type(docs)}, expected a list")
        ids: list[str] = []
        for n, doc in enumerate(docs):
            doc_id = doc.get("id") if isinstance(doc, dict) else None
            if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or doc_id == "":
                raise self._malformed(call, f"results.docs[{n}].id: missing or not an id")
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
        try:
            request = self._http.build_request(
                call.method,
                call.path,
                params=dict(call.params) if call.params else None,
                data=dict(call.data) if call.data else None,
                files=list(call.files) if call.files else None,
                json=call.json,
            )
            if call.files:
                # A multipart body streams part by part, one socket write each (35 for a
                # follow-up); read into memory first, it goes out in one. The parts are
                # in memory already.
                request.read()
            response = self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached LAPOR!: safe to retry even a POST.
            self._log_request(call, self._exc_name(exc), started)
            raise _Retry(f"could not connect ({self._describe_exc(exc)})") from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # The request may have arrived and been applied before the answer was lost.
            self._log_request(call, self._exc_name(exc), started)
            what = f"no complete answer ({self._describe_exc(exc)})"
            if not call.idempotent:
                raise self._unknown(call, what, number, None, None) from None
            raise _Retry(what) from None
        except httpx.DecodingError as exc:
            self._log_request(call, self._exc_name(exc), started)
            raise self._malformed(call, f"undecodable body ({self._describe_exc(exc)})") from None
        except httpx.HTTPError as exc:
            # Local protocol errors, unsupported URL scheme, proxy failures: nothing sent.
            self._log_request(call, self._exc_name(exc), started)
            raise LaporError(
                f"{call.label}: request failed ({self._describe_exc(exc)})",
                method=call.method,
                endpoint=call.path,
            ) from None

        status = response.status_code
        self._log_request(call, str(status), started)
        if 200 <= status < 300:
            return response
        if status == 429 or status >= 500:
            retry_after = self._retry_after(call, response)
            reason = f"HTTP {status}"
            remote, _ = self._error_body(response)
            if remote:
                reason += f" ({_one_line(remote, 120)})"
            if call.idempotent or status == 429 or (status == 503 and retry_after is not None):
                raise _Retry(reason, status, retry_after)
            raise self._unknown(call, reason, number, status, retry_after)
        raise self._refusal(call, response)

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
                    self._scrub(_short_repr(text)),
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
        except ValueError:
            kind = response.headers.get("Content-Type", "no Content-Type")
            start = self._scrub(_one_line(response.text, 60)) if response.content else ""
            raise self._malformed(
                call,
                f"HTTP {response.status_code} body is not JSON ({_one_line(kind, 60)}, "
                f"{len(response.content)} bytes" + (f", starts with {start!r})" if start else ")"),
            ) from None
        if not isinstance(body, dict) or "results" not in body:
            got = (
                f"top-level keys {self._scrub(_one_line(str(sorted(map(str, body))), 120))}"
                if isinstance(body, dict)
                else f"{_json_type(body)} at top level"
            )
            raise self._malformed(call, f"no 'results' envelope ({got})")
        results = body["results"]
        if not isinstance(results, dict):
            raise self._malformed(call, f"'results' is {_json_type(results)}, expected an object")
        # JSON can carry NUL only escaped (a raw control character is not JSON).
        return drop_nul(results) if b"\\u0000" in response.content else results

    def _error_body(self, response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
        """LAPOR!'s ``message`` and ``errors`` from a refusal, scrubbed; the text of the
        body when it is not JSON."""
        try:
            body = response.json()
        except ValueError:
            return self._scrub(_one_line(response.text)), {}
        if not isinstance(body, dict):
            return self._scrub(_one_line(json.dumps(body, ensure_ascii=False))), {}
        raw_message = body.get("message")
        message = self._scrub(_one_line(str(raw_message))) if raw_message else ""
        errors: dict[str, list[str]] = {}
        raw_errors = body.get("errors")
        if isinstance(raw_errors, dict):
            for field, reasons in raw_errors.items():
                items = reasons if isinstance(reasons, list) else [reasons]
                errors[self._scrub(str(field))] = [self._scrub(_one_line(str(r))) for r in items]
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
                f"{call.label}: HTTP 422: LAPOR! refused the input: {_one_line(text, 1000)}",
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
        return f"{name}: {self._scrub(_one_line(text, 200))}" if text else name

    @staticmethod
    def _exc_name(exc: Exception) -> str:
        return type(exc).__name__

    # ----------------------------------------------------------------- parsing

    def _page(
        self,
        call: _Call,
        results: dict[str, Any],
        model: type[M],
        *,
        page: int,
        seen: set[str],
    ) -> Page[M]:
        data = results.get("data")
        if not isinstance(data, list):
            raise self._malformed(call, f"results.data is {_json_type(data)}, expected a list")
        next_url = results.get("next_page_url")
        if next_url is not None and not isinstance(next_url, str):
            raise self._malformed(
                call, f"results.next_page_url is {_json_type(next_url)}, expected a string"
            )
        current = results.get("current_page", page)
        if isinstance(current, str) and current.isdigit():
            current = int(current)
        if isinstance(current, bool) or not isinstance(current, int):
            raise self._malformed(
                call, f"results.current_page is {_short_repr(current)}, expected a number"
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
                sources[str(getattr(item, "id", ""))] = raw
        return Page(items=items, rejected=rejected, sources=sources,
                    next_page_url=next_url or None, page=current)

    def _item(
        self, raw: Any, model: type[M], seen: set[str]
    ) -> tuple[M | None, RejectedItem | None]:
        if not isinstance(raw, dict):
            return None, RejectedItem(
                remote_id=None, reason=f"item: expected an object, got {_json_type(raw)}",
                payload=json.dumps(raw, ensure_ascii=False),
            )
        raw_id = raw.get("id")
        remote_id = (
            str(raw_id)
            if isinstance(raw_id, (str, int, float)) and not isinstance(raw_id, bool)
            else None
        )

        def reject(reason: str) -> tuple[M | None, RejectedItem]:
            # Serialised only here: most items pass, and their JSON is not needed.
            return None, RejectedItem(remote_id=remote_id, reason=reason,
                                      payload=json.dumps(raw, ensure_ascii=False))

        content = raw.get("content")
        limit = self.settings.max_content_chars
        if isinstance(content, str) and len(content) > limit:
            return reject(f"content: {len(content):,} characters, over the limit of {limit:,}")
        try:
            item = model.model_validate(raw)
        except ValidationError as exc:
            return reject(describe_validation(exc))
        key = str(getattr(item, "id", remote_id))
        if key in seen:
            return reject(f"id: {key} repeats an earlier item of this listing")
        seen.add(key)
        return item, None

    def _new_id(self, call: _Call, results: dict[str, Any]) -> int:
        data = results.get("data")
        if not isinstance(data, dict):
            raise self._malformed(call, f"results.data is {_json_type(data)}, expected an object")
        new_id = data.get("id")
        if isinstance(new_id, str) and new_id.isdigit():
            new_id = int(new_id)
        if isinstance(new_id, bool) or not isinstance(new_id, int) or new_id < 1:
            raise self._malformed(
                call, f"results.data.id is {_short_repr(new_id)}, expected a positive integer"
            )
        return new_id

    def _collect(
        self, path: str, model: type[M], params: Mapping[str, str | int], max_pages: int
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
            current = self._page(call, self._send(call), model, page=page, seen=seen_ids)
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
