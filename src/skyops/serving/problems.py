"""A refused request: its HTTP status, a stable code, what was wrong and the limit it broke.

Every way a request can be wrong is one `RequestError`, raised where the problem is found (content
type, parameters, body size, image header, decoding) and turned into the same JSON body by the app:

    {"error": {"status": 413, "code": "too_many_pixels", "message": "...", "limit": 40000000}, "request_id": "..."}

A bad request is never a 5xx: a 5xx means the server itself failed (a bug, or a model that could not
be loaded), and 429/503 say "come back later" with Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestError(Exception):
    """A request the server refuses. `limit` is the bound that was broken (bytes, pixels, images, ...), when there is one."""

    status: int
    code: str
    message: str
    limit: int | float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {"status": self.status, "code": self.code, "message": self.message}
        if self.limit is not None:
            error["limit"] = self.limit
        return error
