"""The sandbox's HTTP face: LAPOR! endpoints (auth + faults) and ``/_sandbox/`` admin.

LAPOR! endpoints are plain ASGI callables rather than Starlette request/response
functions, because two faults need the raw ASGI ``send``: a dropped connection (headers
with a Content-Length, then no body) and an answer withheld until after a delay.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from bridge.config import ENDPOINT_OF_PATH, LaporSettings
from bridge.lapor.api_profile import load_profile, profile_of
from bridge.lapor.models import parse_remote_time
from bridge.lapor.sandbox.state import (
    SandboxError,
    SandboxNotFound,
    SandboxState,
    SandboxValidationError,
    UploadedFile,
)

SANDBOX_BEARER = "sandbox-bearer"
SANDBOX_TOKEN = "{00000000-0000-4000-8000-000000000000}"

#: Endpoint names (LaporSettings field names) and their default paths.
PATH_NAMES: tuple[str, ...] = (
    "inbox_path", "complaint_path", "followups_path", "followup_add_path", "reject_path",
    "create_path", "upload_path", "institutions_path", "templates_path",
)
DEFAULT_PATHS: dict[str, str] = {
    name: load_profile().endpoint(ENDPOINT_OF_PATH[name]).path for name in PATH_NAMES
}
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
#: Declared in the headers of a dropped response; the body never comes.
_DROP_LENGTH = b"4096"

Handler = Callable[[Request], Awaitable[Response]]


class _QuietDrops(logging.Filter):
    # A dropped connection is this sandbox's intent, not a server error worth a log line.
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


_quiet_drops = _QuietDrops()


def quiet_drop_logs() -> None:
    """Silence uvicorn's error line for the connections the drop fault cuts on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if _quiet_drops not in logger.filters:
        logger.addFilter(_quiet_drops)


def resolve_paths(paths: Mapping[str, str] | LaporSettings | None) -> dict[str, str]:
    """Endpoint paths: defaults of LaporSettings, overridden by ``paths``."""
    result = dict(DEFAULT_PATHS)
    if paths is None:
        return result
    if isinstance(paths, LaporSettings):
        profile = profile_of(paths)
        return {name: profile.endpoint(ENDPOINT_OF_PATH[name]).path for name in PATH_NAMES}
    for name, value in paths.items():
        if name not in DEFAULT_PATHS:
            raise ValueError(f"unknown sandbox path {name!r}; expected one of {PATH_NAMES}")
        if value and not value.startswith("/"):
            raise ValueError(f"{name}: expected a path starting with /, got {value!r}")
        result[name] = value
    return result


def _error(status: int, message: str, errors: Mapping[str, list[str]] | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = dict(errors)
    return JSONResponse(body, status_code=status, headers=headers)


def _int_param(request: Request, name: str, default: int, *, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SandboxValidationError({name: [f"{name} harus berupa bilangan bulat."]}) from None
    if value < 1:
        raise SandboxValidationError({name: [f"{name} minimal bernilai 1."]})
    return min(value, maximum) if maximum is not None else value


def _since_param(request: Request) -> datetime | None:
    raw = request.query_params.get("updated_since")
    if raw is None or raw.strip() == "":
        return None
    candidates = [raw]
    # An unencoded "+07:00" arrives as " 07:00" (form decoding turns + into a space).
    if " " in raw.strip():
        head, _, tail = raw.strip().rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for text in candidates:
        try:
            return parse_remote_time(text)
        except ValueError:
            continue
    raise SandboxValidationError(
        {"updated_since": [f"updated_since bukan tanggal yang valid: {raw[:40]!r}."]})


def _complaint_id(request: Request) -> int:
    raw = str(request.path_params.get("id", ""))
    if not raw.isdigit():
        raise SandboxNotFound(f"Laporan dengan id {raw[:20]!r} tidak ditemukan.")
    return int(raw)


def _paged(request: Request, items: list[Any], total: int, page: int, per_page: int
           ) -> dict[str, Any]:
    last_page = max(1, -(-total // per_page))
    first = (page - 1) * per_page
    return {"results": {
        "data": items,
        "current_page": page,
        "per_page": per_page,
        "total": total,
        "last_page": last_page,
        "from": first + 1 if items else None,
        "to": first + len(items) if items else None,
        "next_page_url": _page_url(request, page + 1) if page < last_page else None,
        "prev_page_url": _page_url(request, page - 1) if page > 1 else None,
    }}


def _page_url(request: Request, page: int) -> str:
    # Laravel keeps the other query parameters (updated_since, page_size) in the links.
    return str(request.url.include_query_params(page=page))


async def _form_fields(request: Request) -> tuple[dict[str, Any], list[tuple[str, UploadedFile]]]:
    """Fields (repeated keys -> list) and files (metadata) of a form or JSON body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise SandboxValidationError({"(body)": ["Isi permintaan bukan JSON yang valid."]}
                                         ) from None
        if not isinstance(body, dict):
            raise SandboxValidationError({"(body)": ["Isi permintaan harus objek JSON."]})
        return body, []
    fields: dict[str, Any] = {}
    files: list[tuple[str, UploadedFile]] = []
    form = await request.form()
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                size = value.size if value.size is not None else len(await value.read())
                files.append((key, UploadedFile(value.filename or "lampiran", size,
                                                value.content_type or "application/octet-stream")))
            elif key in fields:
                prev = fields[key]
                fields[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                fields[key] = value
    finally:
        # Uploaded files are spooled to temporary files; only their metadata is kept.
        await form.close()
    return fields, files


def _files(files: list[tuple[str, UploadedFile]], prefix: str) -> list[UploadedFile]:
    return [f for key, f in files if key.startswith(prefix)]


class _LaporEndpoint:
    """One LAPOR! endpoint: latency, 5xx, 429, auth, drop, handler, apply-then-fail."""

    def __init__(self, api: _LaporApi, handler: Handler, write: bool) -> None:
        self.api = api
        self.handler = handler
        self.write = write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.api.state
        injector = state.injector
        injector.count("requests")
        delay = injector.latency()
        if delay:
            await asyncio.sleep(delay)
        status = injector.error()
        if status is not None:
            await self._respond(self._server_error(status), scope, receive, send, drain=True)
            return
        retry_after = injector.throttle()
        if retry_after is not None:
            await self._respond(
                _error(429, "Too Many Attempts.", headers={"Retry-After": retry_after}),
                scope, receive, send, drain=True)
            return
        request = Request(scope, receive)
        if not self.api.authorized(request):
            injector.count("auth_refused")
            await self._respond(_error(401, "Unauthenticated."), scope, receive, send,
                                drain=True)
            return
        drop = injector.drop(self.write)
        if drop == "before":
            await _drain(receive)
            await _drop(send)
            return
        response: Response
        try:
            response = await self.handler(request)
        except SandboxValidationError as exc:
            response = _error(exc.status, exc.message, exc.errors)
        except SandboxError as exc:
            response = _error(exc.status, exc.message)
        if drop == "after":
            await _drop(send)
            return
        if self.write and response.status_code < 300:
            outcome = injector.after_apply()
            if outcome == "fail":
                response = self._server_error(500)
            elif outcome == "slow":
                await self.api.pause(state.faults.slow_after_apply_s)
        await self._respond(response, scope, receive, send)

    def _server_error(self, status: int) -> Response:
        if status == 502:
            # Gateways answer in HTML; a client must not take that for LAPOR!'s JSON.
            return Response("<html><body><h1>502 Bad Gateway</h1></body></html>",
                            status_code=502, media_type="text/html")
        headers = {"Retry-After": str(self.api.state.faults.retry_after_s)} \
            if status == 503 else None
        message = "Service Unavailable" if status == 503 else "Server Error"
        return _error(status, message, headers=headers)

    async def _respond(self, response: Response, scope: Scope, receive: Receive,
                       send: Send, *, drain: bool = False) -> None:
        self.api.state.injector.count(f"status_{response.status_code}")
        if drain:
            await _drain(receive)
        await response(scope, receive, send)


async def _drain(receive: Receive) -> None:
    # Closing a socket with unread request data makes the kernel send a reset, and the
    # client would see that instead of a cut-off body: read the request to its end first.
    message = await receive()
    while message["type"] == "http.request" and message.get("more_body", False):
        message = await receive()


async def _drop(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", _DROP_LENGTH)]})
    await send({"type": "http.response.body", "body": b'{"results":{"data":',
                "more_body": True})
    # Returning now makes uvicorn close the connection mid-body.


class _LaporApi:
    """The LAPOR! endpoint handlers over one state."""

    def __init__(self, state: SandboxState, bearer: str, token: str,
                 bearer_header: str | None) -> None:
        self.state = state
        self._expected_bearer = f"Bearer {bearer}".encode()
        self._token = token.encode()
        if bearer_header is not None and bearer_header.lower() not in ("auth", "authorization"):
            raise ValueError("bearer_header must be 'auth', 'Authorization' or None (either)")
        self._bearer_headers = (
            ("auth", "authorization") if bearer_header is None else (bearer_header.lower(),))
        #: Set when the server stops, so that answers held back by a fault go out now
        #: instead of being cancelled mid-sleep.
        self.stopping = threading.Event()

    async def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    def authorized(self, request: Request) -> bool:
        token = request.headers.get("token", "").encode()
        if not hmac.compare_digest(token, self._token):
            return False
        for name in self._bearer_headers:
            value = request.headers.get(name)
            if value is not None and hmac.compare_digest(value.encode(),
                                                         self._expected_bearer):
                return True
        return False

    async def inbox(self, request: Request) -> Response:
        page = _int_param(request, "page", 1)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        since = _since_param(request)
        state = self.state
        piece = state.inbox(since, page, page_size)
        items = piece.items
        rate = state.faults.malformed_rate
        if rate > 0:
            items = [state.malformed_fragment(f) if state.injector.roll(rate) else f
                     for f in items]
        last_page = max(1, -(-piece.total // page_size))
        meta = {
            "current_page": page,
            "per_page": page_size,
            "total": piece.total,
            "last_page": last_page,
            "from": piece.start - piece.lo + 1 if items else None,
            "to": piece.end - piece.lo if items else None,
            "next_page_url": _page_url(request, page + 1) if page < last_page else None,
            "prev_page_url": _page_url(request, page - 1) if page > 1 else None,
        }
        # The items are cached JSON; only the envelope is encoded per request.
        body = b"".join((b'{"results":{"data":[', b",".join(items), b"],",
                         json.dumps(meta, separators=(",", ":"))[1:].encode(), b"}"))
        state.change_between_pages(piece)
        return Response(body, media_type="application/json")

    async def complaint(self, request: Request) -> Response:
        return JSONResponse({"results": self.state.detail(_complaint_id(request))})

    async def followups(self, request: Request) -> Response:
        rid = _complaint_id(request)
        page = _int_param(request, "page", 1)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        items, total = self.state.followups_page(rid, page, page_size)
        return JSONResponse(_paged(request, items, total, page, page_size))

    async def followup_add(self, request: Request) -> Response:
        fields, files = await _form_fields(request)
        followup = self.state.add_followup(fields, _files(files, "attachment"))
        return JSONResponse({"results": {"data": followup}})

    async def reject(self, request: Request) -> Response:
        rid = _complaint_id(request)
        fields, _ = await _form_fields(request)
        return JSONResponse({"results": {"data": self.state.forward(rid, fields)}})

    async def create(self, request: Request) -> Response:
        fields, _ = await _form_fields(request)
        for key in ("attachments[]",):
            if key in fields:
                value = fields.pop(key)
                fields["attachments"] = value if isinstance(value, list) else [value]
        created = self.state.create_complaint(fields)
        return JSONResponse(self.state.dialect.created(created["id"], created["tracking_id"]))

    async def upload(self, request: Request) -> Response:
        _, files = await _form_fields(request)
        docs = self.state.upload(_files(files, "attachments"))
        return JSONResponse({"results": {"docs": docs}})

    async def institutions(self, request: Request) -> Response:
        return self._listing(request, self.state.institution_list())

    async def templates(self, request: Request) -> Response:
        return self._listing(request, self.state.template_list())

    def _listing(self, request: Request, items: list[dict[str, Any]]) -> Response:
        page = _int_param(request, "page", 1)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        start = (page - 1) * page_size
        return JSONResponse(_paged(request, items[start:start + page_size], len(items), page,
                                   page_size))


# ---------------------------------------------------------------------- admin


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise SandboxValidationError({"(body)": ["not valid JSON"]}) from None
    if not isinstance(body, dict):
        raise SandboxValidationError({"(body)": ["expected a JSON object"]})
    return body


def _admin(func: Callable[[SandboxState, Request], Awaitable[Any]], state: SandboxState
           ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state.injector.count("admin_requests")
        try:
            return JSONResponse(await func(state, request))
        except SandboxValidationError as exc:
            return _error(exc.status, exc.message, exc.errors)
        except SandboxError as exc:
            return _error(exc.status, exc.message)
    return endpoint


def _admin_id(request: Request) -> int:
    return _complaint_id(request)


async def _admin_add(state: SandboxState, request: Request) -> Any:
    return state.add_report(**await _json_object(request))


async def _admin_get(state: SandboxState, request: Request) -> Any:
    rid = _admin_id(request)
    return {"report": state.report(rid), "listed": state.is_listed(rid),
            **state.detail(rid)}


async def _admin_change(state: SandboxState, request: Request) -> Any:
    return state.change_report(_admin_id(request), **await _json_object(request))


async def _admin_random(state: SandboxState, request: Request) -> Any:
    body = await _json_object(request)
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SandboxValidationError({"count": ["expected a whole number >= 0"]})
    return {"changed": state.random_changes(count)}


async def _admin_state(state: SandboxState, request: Request) -> Any:
    return state.summary()


async def _admin_faults(state: SandboxState, request: Request) -> Any:
    if request.method == "GET":
        return state.faults.model_dump()
    return state.set_faults(await _json_object(request)).model_dump()


async def _admin_followups(state: SandboxState, request: Request) -> Any:
    return state.followups_of(_admin_id(request))


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail), headers=exc.headers)


def create_app(
    state: SandboxState,
    *,
    bearer: str = SANDBOX_BEARER,
    token: str = SANDBOX_TOKEN,
    bearer_header: str | None = None,
    paths: Mapping[str, str] | LaporSettings | None = None,
    prefix: str = "",
) -> Starlette:
    """The ASGI app: LAPOR! endpoints under ``prefix`` and admin under ``/_sandbox``."""
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"prefix must start and not end with '/', got {prefix!r}")
    api = _LaporApi(state, bearer, token, bearer_header)
    p = resolve_paths(paths)
    lapor: list[tuple[str, str, Handler, bool]] = [
        ("inbox_path", "GET", api.inbox, False),
        ("complaint_path", "GET", api.complaint, False),
        ("followups_path", "GET", api.followups, False),
        ("followup_add_path", "POST", api.followup_add, True),
        ("reject_path", "POST", api.reject, True),
        ("create_path", "POST", api.create, True),
        ("upload_path", "POST", api.upload, True),
        ("institutions_path", "GET", api.institutions, False),
        ("templates_path", "GET", api.templates, False),
    ]
    routes: list[BaseRoute] = [
        Route("/_sandbox/state", _admin(_admin_state, state), methods=["GET"]),
        Route("/_sandbox/faults", _admin(_admin_faults, state), methods=["GET", "PUT"]),
        Route("/_sandbox/reports", _admin(_admin_add, state), methods=["POST"]),
        Route("/_sandbox/reports/random-changes", _admin(_admin_random, state),
              methods=["POST"]),
        Route("/_sandbox/reports/{id}", _admin(_admin_get, state), methods=["GET"]),
        Route("/_sandbox/reports/{id}", _admin(_admin_change, state), methods=["PATCH"]),
        Route("/_sandbox/reports/{id}/followups", _admin(_admin_followups, state),
              methods=["GET"]),
    ]
    routes += [Route(prefix + p[name], _LaporEndpoint(api, handler, write), methods=[method],
                     name=name)
               for name, method, handler, write in lapor
               # An empty path: the endpoint does not exist on this server (no inbox).
               if p[name]]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _not_found})
    app.state.stopping = api.stopping
    return app
