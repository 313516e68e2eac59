"""One base error for the project; an uncertain POST is never taken for a safe retry."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import httpx
import pytest
import respx
from pydantic import SecretStr

import bridge
from bridge.config import LaporSettings, Secrets
from bridge.errors import BridgeError
from bridge.lapor.client import LaporClient
from bridge.lapor.errors import FailedAttempts, LaporError, OutcomeUnknown, TransientError
from bridge.lapor.models import FollowupRequest

BASE = "https://lapor.test/api/3.0.0"


def test_outcome_unknown_is_a_sibling_of_transient_error() -> None:
    assert not issubclass(OutcomeUnknown, TransientError)
    assert not issubclass(TransientError, OutcomeUnknown)
    for cls in (OutcomeUnknown, TransientError):
        assert issubclass(cls, FailedAttempts) and issubclass(cls, LaporError)
        assert issubclass(cls, BridgeError)


def test_every_public_error_of_the_bridge_derives_from_the_base() -> None:
    found: list[str] = []
    for info in pkgutil.walk_packages(bridge.__path__, "bridge."):
        if ".migrations" in info.name or info.name == "bridge.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == info.name and issubclass(cls, Exception)
                    and not name.startswith("_")):
                found.append(name)
                assert issubclass(cls, BridgeError), f"{info.name}.{name}"
    assert len(found) >= 40


def test_uncertain_post_is_never_retried_blind() -> None:
    # LAPOR! answers 503 without Retry-After: the follow-up may have been applied.
    router = respx.Router(base_url=BASE, assert_all_called=False)
    route = router.post("/complaints/followup/add").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"data": {"id": 77}})])
    sleeps: list[float] = []
    settings = LaporSettings(base_url=BASE, requests_per_second=1000.0, max_attempts=4)
    secrets = Secrets(bearer=SecretStr("b3arer-value"), token=SecretStr("t0ken-value"))
    retried_blind = False
    with LaporClient(settings, secrets, transport=httpx.MockTransport(router.handler),
                     sleep=sleeps.append) as client:
        try:
            client.add_followup(FollowupRequest(complaint_id=5, user_id=3,
                                                institution_from_id=1, institution_to_id=1,
                                                content="Sudah ditangani.\n\n[lb:42]"))
        except TransientError:  # what a caller that re-sends would write
            retried_blind = True
        except OutcomeUnknown as exc:
            assert "read back before posting again" in str(exc)
    assert not retried_blind
    assert route.call_count == 1 and sleeps == []


@pytest.mark.parametrize("cls", [TransientError, OutcomeUnknown])
def test_both_keep_the_attempts_and_the_hint(cls: type[FailedAttempts]) -> None:
    exc = cls("x", retry_after=3.0, attempts=2, method="POST", endpoint="/a", status=503)
    assert (exc.retry_after, exc.attempts, exc.status) == (3.0, 2, 503)
