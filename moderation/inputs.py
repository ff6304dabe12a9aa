"""Documents to score: plain text or Markdown files, JSON Lines of posts, standard input; read in chunks."""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import InputError

CHUNK_BYTES = 1 << 16
JSONL_SUFFIXES = (".jsonl", ".ndjson")
STDIN = "-"


@dataclass(frozen=True, slots=True)
class Document:
    """One document: a text file, or one post of a JSON Lines file. `chunks` yields its text in order."""

    source: str
    doc_id: str | None
    chunks: Iterator[str]


@dataclass(frozen=True, slots=True)
class ReadOptions:
    input_format: str = "auto"  # auto | text | lines | jsonl
    text_field: str = "text"
    id_field: str = "id"
    strict: bool = False  # invalid UTF-8 is an error rather than replaced


def read_documents(
    sources: list[str], options: ReadOptions = ReadOptions(), warn: Callable[[str], None] | None = None
) -> Iterator[Document]:
    """Documents from each source in turn; `-` is standard input. Files are opened only when reached."""
    for source in sources:
        fmt = options.input_format
        if fmt == "auto":
            fmt = "jsonl" if source.lower().endswith(JSONL_SUFFIXES) else "text"
        with _open(source) as raw:
            if fmt == "jsonl":
                yield from _jsonl_documents(raw, source, options)
            elif fmt == "lines":
                for number, line in _lines(_text_chunks(raw, source, options, warn)):
                    if line.strip():
                        yield Document(source, str(number), iter((line,)))
            else:
                yield Document(source, None, _text_chunks(raw, source, options, warn))


def _lines(chunks: Iterator[str]) -> Iterator[tuple[int, str]]:
    """Numbered lines (without their line break) of text given in chunks; a line may span chunks."""
    number, partial = 0, ""
    for chunk in chunks:
        parts = (partial + chunk).splitlines(keepends=True)
        # The last part may be cut mid-line, or be a "\r" whose "\n" is in the next chunk.
        partial = parts.pop() if parts and (not parts[-1].endswith(("\n", "\r")) or parts[-1].endswith("\r")) else ""
        for line in parts:
            number += 1
            yield number, line.rstrip("\r\n")
    if partial:
        yield number + 1, partial.rstrip("\r\n")


def check_sources(sources: list[str]) -> None:
    """Fail early, before a model is loaded, on a source that cannot be a readable file."""
    for source in sources:
        if source != STDIN:
            _open(source).close()


def _open(source: str) -> BinaryIO:
    if source == STDIN:
        return _NoClose(sys.stdin.buffer)
    path = Path(source)
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{source}: is a directory; pass the files in it") from None
    except PermissionError:
        raise InputError(f"{source}: permission denied") from None
    except OSError as e:
        raise InputError(f"{source}: cannot open: {e.strerror}") from None


class _NoClose:
    """Standard input for a `with` block that must not close it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def __enter__(self) -> BinaryIO:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        return None


def _decoder_for(head: bytes) -> tuple[str, int]:
    """The encoding of a byte stream from its first bytes, and how many bytes of byte-order mark to skip."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    return "utf-8", 0


def _text_chunks(raw: BinaryIO, source: str, options: ReadOptions, warn: Callable[[str], None] | None) -> Iterator[str]:
    # read1 returns what is there rather than waiting for a full block: a pipe from a growing log is scored as it comes.
    read = getattr(raw, "read1", raw.read)
    block = read(CHUNK_BYTES)
    encoding, skip = _decoder_for(block)
    block = block[skip:]
    decoder = codecs.getincrementaldecoder(encoding)()
    pos = skip  # stream offset of `block`
    warned = False
    while True:
        final = not block
        buffered = len(decoder.getstate()[0])  # bytes of a character split over the previous block
        try:
            text = decoder.decode(block, final)
        except UnicodeDecodeError as e:
            data = bytes(e.object)
            if options.strict:
                raise InputError(
                    f"{source}: invalid {encoding} at byte {pos - buffered + e.start} (--strict)"
                ) from None
            if warn and not warned:
                warn(f"{source}: invalid {encoding} at byte {pos - buffered + e.start}; replaced with U+FFFD")
                warned = True
            yield data[: e.start].decode(encoding) + "\ufffd"
            decoder.reset()
            pos += len(block) - (len(data) - e.end)
            block = data[e.end :]  # decode the rest afresh
            continue
        if text:
            yield text
        if final:
            return
        pos += len(block)
        block = read(CHUNK_BYTES)


def _jsonl_documents(raw: BinaryIO, source: str, options: ReadOptions) -> Iterator[Document]:
    for number, line in enumerate(raw, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            post = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{where}: invalid JSON: {getattr(e, 'msg', e)}") from None
        if not isinstance(post, dict):
            raise InputError(f"{where}: expected a JSON object with a {options.text_field!r} field")
        text = post.get(options.text_field)
        if not isinstance(text, str):
            what = "missing" if text is None else f"a {type(text).__name__}, not a string"
            raise InputError(f"{where}: field {options.text_field!r} is {what}")
        doc_id = post.get(options.id_field)
        yield Document(source, None if doc_id is None else str(doc_id), iter((text,)))
