"""Several institutions on one sandbox server: the LAPOR! accounts of a whole Pemda.

Each institution has its own :class:`SandboxState` (its own reports, inbox, faults and
counters) and its own bearer; a request goes to the state whose bearer it carries, as
LAPOR! answers each account with what is disposed to it. Report ids of different
institutions never overlap (each gets its own range), so a report handed from one to
another keeps its id and tracking id.

A report moves between hosted institutions the way the bridge moves it: a forward
("bukan wewenang", which moves the disposition) or a follow-up addressed to another
hosted institution hands the receiver a copy of the report with its history so far, so
the receiver can read it and post its own follow-ups. From then on each copy has its own
history: unlike LAPOR!, the sender does not see what the receiver posts (the bridge
shows that from the receiver's store, not from LAPOR!).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from bridge.config import LaporSettings, Secrets
from bridge.lapor.sandbox.app import SANDBOX_BEARER, SANDBOX_TOKEN, create_app, quiet_drop_logs
from bridge.lapor.sandbox.faults import Faults
from bridge.lapor.sandbox.state import POSTED_ID_BASE, SandboxState, UploadedFile

#: Report ids of the k-th institution start after k * ID_RANGE (a million each).
ID_RANGE = 1_000_000
#: Ids of follow-ups posted to the k-th institution start after this times k.
POSTED_RANGE = 10_000_000


def bearer_of(institution_id: int, prefix: str = SANDBOX_BEARER) -> str:
    """The (fake) bearer the multi-institution sandbox gives an institution."""
    return f"{prefix}-{institution_id}"


class MemberState(SandboxState):
    """One institution of a :class:`SandboxWorld`: ids from its own range, and reports
    forwarded to another member handed over to it."""

    def __init__(self, world: SandboxWorld, index: int, seed: int, reports: int,
                 **options: Any) -> None:
        self.world = world
        self.id_base = index * ID_RANGE
        super().__init__(seed, reports, **options)
        self._next_id = self.id_base + reports + 1
        self._posted_seq = POSTED_ID_BASE + index * POSTED_RANGE

    def _seed_reports(self, count: int) -> None:
        if count >= ID_RANGE:
            raise ValueError(f"at most {ID_RANGE - 1} reports per institution")
        factory = self._factory
        for rid in range(self.id_base + 1, self.id_base + count + 1):
            created, updated = factory.times(self.anchor_ts)
            self._reports[rid] = factory.report(rid, created, updated)
            self._updated[rid] = updated
            self._listed.add(rid)
            self._index.append((updated, rid))
        self._index.sort()

    def forward(self, rid: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        result = super().forward(rid, fields)
        self.world.hand_over(self, rid, int(result["disposition_id"]))
        return result

    def add_followup(self, fields: Mapping[str, Any],
                     attachments: Any = ()) -> dict[str, Any]:
        files: list[UploadedFile] = list(attachments)
        followup = super().add_followup(fields, files)
        self.world.hand_over(self, int(followup["complaint_id"]),
                             int(followup["institution_to"]["id"]))
        return followup

    def take_over(self, data: dict[str, Any], history: Any) -> None:
        """Receive a copy of another member's report (and its history so far)."""
        with self.lock:
            rid = data["id"]
            if rid in self._reports:  # handed over before: only the disposition moves
                self._reports[rid]["disposition_id"] = data.get("disposition_id")
                self._reports[rid]["disposition_name"] = data.get("disposition_name")
                self._json.pop(rid, None)
            else:
                self._reports[rid] = data
                self._updated[rid] = self.now()
                self._history[rid] = history
            self._mark_listed(rid)
            self._set_updated(rid, self.now())


class SandboxWorld:
    """The states of several institutions, and who holds which bearer."""

    def __init__(self, institutions: Sequence[int] | Mapping[int, str], *, seed: int = 0,
                 reports: int = 50, anchor: datetime | None = None,
                 faults: Faults | Mapping[str, Any] | None = None,
                 dialect: str = "lapor-v3", bearer_prefix: str = SANDBOX_BEARER) -> None:
        names = dict(institutions) if isinstance(institutions, Mapping) else {
            i: f"Instansi {i}" for i in institutions}
        if not names:
            raise ValueError("a sandbox world needs at least one institution")
        self.bearer_prefix = bearer_prefix
        self.states: dict[int, MemberState] = {}
        for index, iid in enumerate(names, start=1):
            self.states[iid] = MemberState(self, index, seed + index - 1, reports,
                                           institution_id=iid, anchor=anchor, faults=faults,
                                           dialect=dialect)
        for state in self.states.values():
            # Every member knows the others as institutions a report can go to.
            state.institutions.update(names)

    def state(self, institution_id: int) -> MemberState:
        return self.states[institution_id]

    def bearer(self, institution_id: int) -> str:
        return bearer_of(institution_id, self.bearer_prefix)

    def hand_over(self, sender: MemberState, rid: int, to: int) -> None:
        receiver = self.states.get(to)
        if receiver is None or receiver is sender:
            return
        with sender.lock:
            data = copy.deepcopy(sender._reports[rid])
            history = copy.deepcopy(sender._history_of(rid))
        receiver.take_over(data, history)

    def set_faults(self, faults: Faults | Mapping[str, Any] | None = None) -> None:
        for state in self.states.values():
            state.set_faults(faults)


class MultiApp:
    """ASGI: each LAPOR! request to the app of the institution whose bearer it carries;
    ``/_sandbox/<institution id>/...`` to that institution's admin, plain ``/_sandbox/...``
    to the first one's. An unknown bearer gets LAPOR!'s 401."""

    def __init__(self, world: SandboxWorld, *, token: str = SANDBOX_TOKEN,
                 make_app: Callable[..., Any] = create_app, **options: Any) -> None:
        self.world = world
        self.apps: dict[int, Any] = {}
        self.by_bearer: dict[bytes, int] = {}
        for iid, state in world.states.items():
            bearer = world.bearer(iid)
            self.apps[iid] = make_app(state, bearer=bearer, token=token, **options)
            self.by_bearer[f"Bearer {bearer}".encode()] = iid
        self.first = next(iter(self.apps))

    def stopping_events(self) -> list[Any]:
        return [app.state.stopping for app in self.apps.values()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.apps[self.first](scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/_sandbox/"):
            head, _, rest = path[len("/_sandbox/"):].partition("/")
            if head.isdigit() and int(head) in self.apps:
                scope = {**scope, "path": "/_sandbox/" + rest, "raw_path": None}
                await self.apps[int(head)](scope, receive, send)
            else:
                await self.apps[self.first](scope, receive, send)
            return
        iid = None
        for name, value in scope.get("headers", []):
            if name in (b"auth", b"authorization"):
                iid = self.by_bearer.get(value)
                if iid is not None:
                    break
        if iid is None:
            await _unauthorized(receive, send)
            return
        await self.apps[iid](scope, receive, send)


async def _unauthorized(receive: Receive, send: Send) -> None:
    message = await receive()
    while message["type"] == "http.request" and message.get("more_body", False):
        message = await receive()
    body = json.dumps({"message": "Unauthenticated."}).encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class MultiSandboxServer:
    """A :class:`SandboxWorld` on a real loopback port (``port=0`` picks a free one)."""

    def __init__(self, institutions: Sequence[int] | Mapping[int, str], *, seed: int = 0,
                 reports: int = 50, host: str = "127.0.0.1", port: int = 0,
                 token: str = SANDBOX_TOKEN, bearer_prefix: str = SANDBOX_BEARER,
                 faults: Faults | Mapping[str, Any] | None = None,
                 anchor: datetime | None = None, dialect: str = "lapor-v3",
                 access_log: bool = False) -> None:
        from bridge.serving import ThreadedServer

        self.world = SandboxWorld(institutions, seed=seed, reports=reports, anchor=anchor,
                                  faults=faults, dialect=dialect, bearer_prefix=bearer_prefix)
        self.token = token
        self.app = MultiApp(self.world, token=token)
        self._stopping = self.app.stopping_events()
        self.host = host
        self._http = ThreadedServer(self.app, host, port, name="sandbox",
                                    access_log=access_log, stopping=self._stopping[0])
        self.port: int = self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def admin_url(self, institution_id: int) -> str:
        return f"{self.url}/_sandbox/{institution_id}"

    def state(self, institution_id: int) -> MemberState:
        return self.world.state(institution_id)

    def settings(self, institution_id: int, **overrides: Any) -> LaporSettings:
        """LaporSettings of one institution's account on this sandbox."""
        values: dict[str, Any] = {"base_url": self.url, "bearer_header": "auth",
                                  "institution_id": institution_id}
        values.update(overrides)
        return LaporSettings(**values)

    def secrets(self, institution_id: int) -> Secrets:
        """The fake credentials of one institution (its own bearer, the shared token)."""
        return Secrets(bearer=SecretStr(self.world.bearer(institution_id)),
                       token=SecretStr(self.token))

    def start(self) -> MultiSandboxServer:
        quiet_drop_logs()
        self._http.start(10.0)
        return self

    def stop(self) -> None:
        for event in self._stopping:
            event.set()
        self._http.stop()

    def __enter__(self) -> MultiSandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def banner(self) -> list[str]:
        lines = [f"LAPOR! sandbox listening on {self.url} for "
                 f"{len(self.world.states)} institutions",
                 "  sandbox-only credentials (fake): header auth: Bearer <bearer>, "
                 f"header token: {self.token}"]
        for iid, state in self.world.states.items():
            lines.append(f"    institution {iid}: bearer {self.world.bearer(iid)}, "
                         f"{len(state.inbox_ids())} reports, admin {self.admin_url(iid)}")
        lines.append("Press Ctrl-C to stop.")
        return lines

    def serve_forever(self, out: Callable[[str], None] = print) -> None:
        for line in self.banner():
            out(line)
        quiet_drop_logs()
        self._http.run_foreground()
