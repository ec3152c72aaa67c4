"""A Server-Sent Events parser (the WHATWG ``text/event-stream`` format), fed bytes as they
arrive: lines end in ``\\n``, ``\\r\\n`` or ``\\r``; ``field: value`` lines build a message, a
blank line dispatches it; lines starting with ``:`` are comments (heartbeats)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class SseMessage:
    """One dispatched message: ``data`` is empty for a block without data lines (such as the
    server's opening ``id:``); ``id`` is the last event id after it (None if never set)."""

    event: str
    data: str
    id: str | None


class SseParser:
    """Turns chunks of a stream into ``SseMessage`` values; counts comments."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self.comments = 0
        self.reset()

    def reset(self) -> None:
        """Forget a partial message (a new connection); the last id and counts stay."""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._data: list[str] = []
        self._event = ""
        self._started = False

    def feed(self, chunk: bytes) -> list[SseMessage]:
        text = self._pending + self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        messages: list[SseMessage] = []
        start = 0
        length = len(text)
        while True:
            cut = _next_break(text, start)
            if cut < 0:
                break
            end = cut + 1
            if text[cut] == "\r":
                if cut + 1 >= length:
                    break  # a lone "\r" at the end may be half of "\r\n": wait for more
                if text[cut + 1] == "\n":
                    end = cut + 2
            message = self._line(text[start:cut])
            if message is not None:
                messages.append(message)
            start = end
        self._pending = text[start:]
        return messages

    def _line(self, line: str) -> SseMessage | None:
        if not line:
            data = "\n".join(self._data)
            message = SseMessage(self._event or "message", data, self.last_id)
            self._data, self._event = [], ""
            return message
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def _next_break(text: str, start: int) -> int:
    found = [i for i in (text.find("\n", start), text.find("\r", start)) if i >= 0]
    return min(found) if found else -1


__all__ = ["SseMessage", "SseParser"]
