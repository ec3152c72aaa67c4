"""What every HTTP repository shares: the transport, the route table, the serializer."""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from travian_repo.http.transport import Transport
from travian_repo.repositories.base import Repository
from travian_repo.wire.routes import route
from travian_repo.wire.serializer import decode, decode_list

T = TypeVar("T")


class HttpRepository(Repository):
    """Arguments are checked here with the same validation as the SQL side, so bad input
    never leaves the process; the server checks the rest and answers with the same errors."""

    def __init__(self, transport: Transport, acting_player_id: int | None) -> None:
        self._transport = transport
        self._actor = acting_player_id

    def _call(
        self,
        operation: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        **path: int | str,
    ) -> Any:
        r = route(operation)
        result = None
        try:
            result = self._transport.request(
                operation, r.method, r.url_path(**path), params=params, json_body=body
            )
            return result
        finally:
            if r.is_write and self._cache is not None:
                # Committed by the server when it answered (or maybe, when the call failed):
                # invalidate after it, never before.
                self._cache.wrote(operation, self._actor, path, body, result)

    def _one(self, cls: type[T], operation: str, **kwargs: Any) -> T:
        return decode(cls, self._call(operation, **kwargs))

    def _many(self, cls: type[T], operation: str, **kwargs: Any) -> list[T]:
        return decode_list(cls, self._call(operation, **kwargs))
