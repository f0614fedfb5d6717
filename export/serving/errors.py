"""One error type for both front-ends, with TF Serving's canonical codes, and the op's own words
from a TF runtime error (``tf_error_message``)."""

from __future__ import annotations

import re

import grpc

# TF Serving's mapping of canonical error codes to HTTP (model_servers/http_server.cc).
HTTP_STATUS = {
    "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409,
    "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503,
    "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request that cannot be served: a canonical code (``"NOT_FOUND"``...) and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return getattr(grpc.StatusCode, self.code, grpc.StatusCode.UNKNOWN)


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\](?: name: \S*)?\s*$")


def tf_error_message(message: str) -> str:
    """The op's own words from a TF runtime error message, as TF Serving reports them.

    TF 2 wraps errors raised inside a function as ``Graph execution error:\n\nDetected at node
    N defined at (most recent call last):\n<stack frames>\nMESSAGE\n\t [[{{node N}}]] [Op:F]``;
    only MESSAGE says what went wrong (e.g. ``assertion failed: [...]``), so it is kept and the
    wrapper, the Python stack frames and the node/op suffixes are dropped.
    """
    text = str(message).strip()
    lines = text.split("\n")
    detected = next((i for i, line in enumerate(lines) if line.startswith("Detected at node")),
                    None)
    if detected is not None:
        body = []
        for line in lines[detected + 1:]:
            if line.startswith("\t [[") or (body and line.startswith("Detected at node")):
                break
            if body or (line.strip() and not line.startswith((" ", "\t", "<stack traces"))):
                body.append(line)
        text = "\n".join(body).strip() or text
    else:
        text = text.split("\n\n")[0]
        text = text.split("\n\t [[")[0]
    text = _OP_SUFFIX.sub("", _FUNCTION_NODE.sub("", text)).strip()
    return text or str(message).strip()
