"""multipart/form-data request bodies (the upload endpoint), read with python-multipart: the parser
FirecREST v2 itself reads them with (through Starlette), so a form it accepts we accept, with the
same field and file-name rules (RFC 7578: quoted names with \\" and \\\\ escapes, no `filename*`).

Every malformed body is the caller's error (InvalidArgument, 400); the size limits are the
servicer's (413 before anything is parsed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from core.domain.errors import InvalidArgument

# python-multipart logs each malformed body as a warning before raising: here that is the
# caller's 400, not a server event
logging.getLogger("python_multipart.multipart").setLevel(logging.ERROR)

# room for the form's boundaries, headers and other small fields around the file
FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class FormFile:
    filename: str | None
    content: bytes


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    name: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    data: list[bytes] = field(default_factory=list)
    wanted: bool = False
    filename: str | None = None


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"malformed multipart/form-data part headers ({what} is not UTF-8)") from e


class _FileCollector:
    """The callbacks of one parse: keeps the first complete part named `field`, drops the others."""

    def __init__(self, field_name: str):
        self.field = field_name
        self.part = _Part()
        self.found: _Part | None = None
        self.ended = False

    def begin(self) -> None:
        self.part = _Part()

    def header_name(self, data: bytes, start: int, end: int) -> None:
        self.part.name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.value += data[start:end]

    def header_end(self) -> None:
        p = self.part
        p.headers.append((bytes(p.name).strip().lower(), bytes(p.value).strip()))
        p.name, p.value = bytearray(), bytearray()

    def headers_done(self) -> None:
        p = self.part
        disposition = next((v for k, v in p.headers if k == b"content-disposition"), b"")
        # bytes in: python-multipart reads them as latin-1, so the UTF-8 of a name survives intact
        kind, params = parse_options_header(disposition)
        name = _text(params.get(b"name", b""), "the field name")
        p.wanted = self.found is None and kind == b"form-data" and name == self.field
        if p.wanted and params.get(b"filename"):
            p.filename = _text(params[b"filename"], "the file name")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.part.wanted:
            self.part.data.append(data[start:end])

    def part_end(self) -> None:
        if self.part.wanted and self.found is None:
            self.found = self.part

    def end(self) -> None:
        self.ended = True


def parse_upload_form(content_type: str, body: bytes, field_name: str = "file") -> FormFile:
    """The part named `field_name` of a multipart/form-data body, its content exactly as sent."""
    # as bytes: python-multipart reads a str as latin-1 only (and a header may carry any UTF-8)
    mime, params = parse_options_header(content_type.encode("utf-8", "surrogateescape"))
    if mime != b"multipart/form-data":
        raise InvalidArgument(f"the upload must be multipart/form-data, not {content_type or 'empty'!r}")
    boundary = params.get(b"boundary", b"")
    if not boundary:
        raise InvalidArgument("the multipart/form-data content type has no valid boundary")
    collector = _FileCollector(field_name)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": collector.begin,
                "on_header_field": collector.header_name,
                "on_header_value": collector.header_value,
                "on_header_end": collector.header_end,
                "on_headers_finished": collector.headers_done,
                "on_part_data": collector.data,
                "on_part_end": collector.part_end,
                "on_end": collector.end,
            },
        )
        parser.write(body)
        parser.finalize()
    except FormParserError as e:
        raise InvalidArgument(f"malformed multipart/form-data body ({e})") from e
    if not collector.ended:
        raise InvalidArgument("malformed multipart/form-data body (no closing boundary)")
    if collector.found is None:
        raise InvalidArgument(f"the multipart/form-data body has no `{field_name}` field")
    return FormFile(collector.found.filename, b"".join(collector.found.data))
