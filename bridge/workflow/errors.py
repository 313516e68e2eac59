"""Errors of the workflow package."""

from __future__ import annotations

from bridge.errors import BridgeError


class WorkflowError(BridgeError):
    """Base class of everything this package raises on purpose."""


class WorkflowProfileError(WorkflowError):
    """A problem in a ``[workflow]`` (or ``[calendar]``) section.

    ``str()`` is ``"<key>: <problem>"``; the CLI prefixes the file name, as
    :class:`bridge.config.ConfigError` does.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class TransitionNotAllowed(WorkflowError):
    """An action that the profile does not allow for this stage, role or approval step."""


class MissingFields(TransitionNotAllowed):
    """An allowed action called without the fields the profile requires for it."""

    def __init__(self, message: str, missing: tuple[str, ...]) -> None:
        self.missing = missing
        super().__init__(message)
