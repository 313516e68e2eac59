"""The built-in LAPOR! sandbox: a real HTTP server on loopback that speaks the API
contract (see docs/sandbox.md), seeded with synthetic reports and able to inject faults.

Imports only bridge.config and bridge.lapor.models from the project, never the store,
the sync or anything above them.
"""

from bridge.lapor.sandbox.app import (
    DEFAULT_PATHS,
    SANDBOX_BEARER,
    SANDBOX_TOKEN,
    create_app,
)
from bridge.lapor.sandbox.faults import Faults
from bridge.lapor.sandbox.server import SandboxServer, serve_forever
from bridge.lapor.sandbox.state import (
    SandboxError,
    SandboxNotFound,
    SandboxState,
    SandboxValidationError,
    UploadedFile,
)

__all__ = [
    "DEFAULT_PATHS",
    "SANDBOX_BEARER",
    "SANDBOX_TOKEN",
    "Faults",
    "SandboxError",
    "SandboxNotFound",
    "SandboxServer",
    "SandboxState",
    "SandboxValidationError",
    "UploadedFile",
    "create_app",
    "serve_forever",
]
