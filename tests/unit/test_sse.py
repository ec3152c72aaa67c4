"""The Server-Sent Events parser: line endings, chunk boundaries, comments, ids."""

from __future__ import annotations

from travian_repo.http.sse import SseMessage, SseParser


def feed_all(chunks: list[bytes]) -> tuple[SseParser, list[SseMessage]]:
    parser = SseParser()
    messages: list[SseMessage] = []
    for chunk in chunks:
        messages += parser.feed(chunk)
    return parser, messages


def test_messages_comments_and_ids_across_any_chunking() -> None:
    stream = (b"\xef\xbb\xbfretry: 2000\nid: a-1\n\n: heartbeat\n\n"
              b"id: a-2\r\nevent: message_received\r\ndata: {\"x\":\r\ndata: 1}\r\n\r\n"
              b"data:no space\rid\r\r" +
              "data: é\n\n".encode())
    expected = [
        SseMessage("message", "", "a-1"),
        SseMessage("message", "", "a-1"),  # the comment's block: no data, nothing new
        SseMessage("message_received", '{"x":\n1}', "a-2"),
        SseMessage("message", "no space", ""),
        SseMessage("message", "é", ""),
    ]
    for size in (1, 2, 3, 7, len(stream)):
        parser, messages = feed_all([stream[i:i + size] for i in range(0, len(stream), size)])
        assert messages == expected, size
        assert parser.comments == 1 and parser.retry_ms == 2000


def test_a_lone_carriage_return_at_a_chunk_end_waits_for_the_next_byte() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []  # "\r\n" is one line ending, not two
    assert parser.feed(b"\r\n") == [SseMessage("message", "a", None)]


def test_a_new_connection_forgets_the_partial_message_but_keeps_the_id() -> None:
    parser = SseParser()
    parser.feed(b"id: a-5\n\ndata: cut off")
    parser.reset()
    assert parser.feed(b"data: whole\n\n") == [SseMessage("message", "whole", "a-5")]
