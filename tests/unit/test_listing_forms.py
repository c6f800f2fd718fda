"""ListDirectory's two forms (core.api.restjson.Records/TwoForms): the JSON written straight from the
entries for REST callers is byte for byte to_json() of the protobuf native callers get, and that
protobuf is the one built field by field from the entries (storage._file_fields)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from google.api import httpbody_pb2

from core.adapters import files
from core.adapters.ssh import ExecResult
from core.api import storage
from core.api.restjson import Records, http_body, to_json
from core.domain.files import FileEntry
from core.proto.firecrest.compute.v1 import compute_pb2
from core.proto.firecrest.storage.v1 import storage_pb2 as pb


def field_by_field(entries: list[FileEntry]) -> pb.ListDirectoryResponse:
    return pb.ListDirectoryResponse(output=[pb.File(**storage._file_fields(e)) for e in entries])


def listed(path: Path, recursive: bool) -> list[FileEntry]:
    """The directory listed by the adapter's own command, run here (find, as on a login node)."""
    cmd = files.ListFiles(str(path), True, True, recursive, False)
    out = subprocess.run(cmd.tool_argv(), capture_output=True, check=True).stdout
    return files.ListFiles.entries(cmd.parse(ExecResult(0, out, b"")), {str(os.getuid()): "me"}, None)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a b").write_text("twelve bytes")
    (tmp_path / 'é"\n\\').write_text("")
    (tmp_path / ".hidden").write_text("x")
    os.mkdir(bytes(tmp_path) + b"/\xff\xfe-not-utf8")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "f").write_bytes(b"0" * 5000)
    os.symlink("/etc/hosts", tmp_path / "ln")
    os.symlink(b"/nowhere/\xff", bytes(tmp_path) + b"/ln-bad")
    os.symlink("sub", tmp_path / "sub" / "loop")
    return tmp_path


@pytest.mark.parametrize("recursive", [False, True])
def test_rest_json_is_to_json_of_the_native_message(tree: Path, recursive: bool) -> None:
    entries = listed(tree, recursive)
    assert len(entries) == (10 if recursive else 7)
    names = [e.name for e in entries]
    assert ("sub/deeper/f" in names) is recursive and "\\xff\\xfe-not-utf8" in names
    links = {e.name: e.link_target for e in entries if e.type == "l"}
    assert links["ln"] == "/etc/hosts" and links["ln-bad"] == "/nowhere/\\xff"
    assert {e.user for e in entries} == {"me"}  # named as made

    forms = storage._LISTING.two_forms(entries)
    message = forms.message()
    assert message == field_by_field(entries)  # native callers: the same protobuf as before
    assert forms.json() == to_json(message)  # REST callers: the same bytes as before
    assert forms.http_body() == http_body(message)
    body = httpbody_pb2.HttpBody.FromString(forms.http_body())
    assert body.content_type == "application/json" and b'"linkTarget":null' in body.data
    assert b'"linkTarget":"/etc/hosts"' in body.data


def test_an_empty_listing_and_odd_values() -> None:
    assert storage._LISTING.json([]) == to_json(pb.ListDirectoryResponse()) == b'{"output":[]}'
    odd = [
        FileEntry("", "", None, "", "", "", "", ""),
        FileEntry("x\u2028\x00\x7f😀", "l", "t\x01", "0", "0", "rwsr-S--T", "1970-01-01T00:00:00", "18446744073709551615"),
    ]
    assert storage._LISTING.message(odd) == field_by_field(odd)
    assert storage._LISTING.json(odd) == to_json(field_by_field(odd))


class Job(NamedTuple):
    job_id: int


def test_only_records_that_match_the_message_are_taken() -> None:
    class Short(NamedTuple):
        name: str

    with pytest.raises(ValueError, match="has fields"):
        Records(pb.ListDirectoryResponse, "output", Short)
    with pytest.raises(ValueError, match="not one repeated message field"):
        Records(pb.ChmodResponse, "output", FileEntry)  # a single File, not a list
    with pytest.raises(ValueError):
        Records(compute_pb2.ListJobsResponse, "jobs", Job)
