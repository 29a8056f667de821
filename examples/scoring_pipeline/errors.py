"""The pipeline's exceptions: one FaultError subclass per catalog code.

Category, severity, retryability and hint live in ``codes.yaml``, not here, so that the
meaning of a code is defined once, for every place that raises it and every tool that reads
it (`faultlens codes --catalog codes.yaml`).
"""

from __future__ import annotations

from pathlib import Path

import faultlens

CODES_FILE = Path(__file__).with_name("codes.yaml")


def load_catalog() -> None:
    """Register the pipeline's codes (idempotent: the same definitions load twice fine)."""
    faultlens.catalog.load(CODES_FILE)


class WorkspaceNotFound(faultlens.FaultError):
    code = "WORKSPACE_NOT_FOUND"


class InvalidParams(faultlens.FaultError):
    code = "INVALID_PARAMS"


class BadFormat(faultlens.FaultError):
    code = "BAD_FORMAT"


class Mismatch(faultlens.FaultError):
    code = "MISMATCH"


class MissingFile(faultlens.FaultError):
    code = "MISSING_FILE"


class ImageNotFound(faultlens.FaultError):
    code = "IMAGE_NOT_FOUND"


class ContainerFailed(faultlens.FaultError):
    code = "CONTAINER_FAILED"


class ScoringTimeout(faultlens.FaultError, TimeoutError):
    code = "TIMEOUT_ERROR"


class PermissionDenied(faultlens.FaultError, PermissionError):
    code = "PERMISSION_DENIED"


class UnhandledError(faultlens.FaultError):
    code = "UNHANDLED_ERROR"


class ListError(faultlens.FaultError):
    code = "LIST_ERROR"


class LoadError(faultlens.FaultError):
    code = "LOAD_ERROR"


class SubmitError(faultlens.FaultError):
    code = "SUBMIT_ERROR"
