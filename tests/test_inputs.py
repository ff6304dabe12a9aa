from __future__ import annotations

import pytest

from moderation.inputs import ReadOptions, _text_chunks


class _Pipe:
    """A pipe's reads as they arrive: each call returns the next piece, then b"" (the end)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self, n: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    read = read1


TEXT = "Hello there. I will kill you tonight.\n"


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5])
def test_a_pipes_first_reads_may_split_or_hold_only_the_byte_order_mark(codec: str, cut: int) -> None:
    data = TEXT.encode(codec)
    # The first read stops `cut` bytes in: inside the mark, at its end, or just after it; the rest comes later.
    pieces = [data[:cut], data[cut : cut + 1], data[cut + 1 :]]
    warnings: list[str] = []
    assert "".join(_text_chunks(_Pipe(pieces), "-", ReadOptions(strict=True), warnings.append)) == TEXT
    assert warnings == []


def test_text_that_merely_starts_like_no_mark_is_not_held_back() -> None:
    # A live input's first line must be scored before more arrives: only a mark's first bytes make it wait.
    pipe = _Pipe([b"hi\n", b"more\n"])
    chunks = _text_chunks(pipe, "-", ReadOptions(), None)
    assert next(chunks) == "hi\n" and pipe.pieces == [b"more\n"]
