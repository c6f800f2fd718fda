"""Path and argument validation (core.domain.paths), and the pure parts of the file operations:
how commands are quoted, how their output is parsed, how failures map to errors, and how an upload
form is read. No processes."""

from __future__ import annotations

import re
import shlex

import pytest

from core.adapters import files, scripts
from core.adapters.ssh import ExecResult
from core.api.forms import parse_upload_form
from core.domain import paths
from core.domain.errors import (
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Reason,
    Timeout,
)
from core.domain.files import FileEntry, FileStatus

HOSTILE = [
    "/home/alice/with space",
    '/home/alice/quote\'s "double"',
    "/home/alice/ünïcødé ✓",
    "/home/alice/new\nline",
    "/home/alice/-rf",
    "/home/alice/--help",
    "/home/alice/$(touch pwned)",
    "/home/alice/`id`;rm -rf ~ &",
    "/home/alice/a/../b",
    "/home/alice/glob*?[a]",
    "/home/alice/back\\slash",
    "/",
]


# ------------------------------------------------------------------------------- require_path


@pytest.mark.parametrize("p", HOSTILE)
def test_absolute_paths_pass_unchanged(p: str) -> None:
    assert paths.require_path(p) == p


@pytest.mark.parametrize(
    ("p", "fragment"),
    [
        ("", "required"),
        ("relative/x", "absolute"),
        ("./x", "absolute"),
        ("~/x", "absolute"),
        ("-rf", "absolute"),
        ("/a\x00b", "NUL"),
        ("/" + "a" * 5000, "longer"),
    ],
)
def test_bad_paths_are_invalid_arguments(p: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment) as e:
        paths.require_path(p, "sourcePath")
    assert e.value.metadata == {"field": "sourcePath"}


def test_names() -> None:
    assert paths.require_name("a b 'c' ü\n") == "a b 'c' ü\n"
    assert paths.require_name("-rf") == "-rf"
    assert paths.require_name("...") == "..."
    for bad in ("", ".", "..", "a/b", "../x", "x\x00", "n" * 256):
        with pytest.raises(InvalidArgument):
            paths.require_name(bad)


def test_join_does_not_normalise() -> None:
    assert paths.join("/a/b", "c") == "/a/b/c"
    assert paths.join("/a/b/", "c") == "/a/b/c"
    assert paths.join("/", "c") == "/c"
    assert paths.join("/a/../b", "c") == "/a/../b/c"


@pytest.mark.parametrize(
    ("p", "parent", "name"),
    [
        ("/a/b", "/a", "b"),
        ("/a/b/", "/a", "b"),
        ("/a//b//", "/a", "b"),
        ("/a", "/", "a"),
        ("/", "/", "."),
        ("//", "/", "."),
        ("/x/my dir", "/x", "my dir"),
        ("/x/-rf", "/x", "-rf"),
        ("/x/../y", "/x/..", "y"),
    ],
)
def test_split_for_archive(p: str, parent: str, name: str) -> None:
    assert paths.split_for_archive(p) == paths.Split(parent, name)


@pytest.mark.parametrize("p", ["/a/..", "/a/../", "/a/.", "/a/b/./"])
def test_split_for_archive_refuses_dot_names(p: str) -> None:
    with pytest.raises(InvalidArgument, match=r"'\.' or '\.\.'"):
        paths.split_for_archive(p)


# ------------------------------------------------------------------------------- other arguments


@pytest.mark.parametrize(
    "mode", ["755", "0640", "7", "4755", "u+x", "go-w", "a=r,u+w", "+t", "u=g", "-w", "=", "ug+rwX"]
)
def test_valid_modes(mode: str) -> None:
    assert paths.require_mode(mode) == mode


@pytest.mark.parametrize(
    "mode", ["", "999", "8", "77777", "u+z", "--reference=/etc/shadow", "755 ", "rwx", "u+x,", "-R"]
)
def test_invalid_modes(mode: str) -> None:
    with pytest.raises(InvalidArgument):
        paths.require_mode(mode)


def test_owner_spec() -> None:
    assert paths.owner_spec("alice", "") == "alice"
    assert paths.owner_spec("alice", "staff") == "alice:staff"
    assert paths.owner_spec("", "staff") == ":staff"
    assert paths.owner_spec("1001", "1002") == "1001:1002"
    assert paths.owner_spec("machine$", "") == "machine$"
    for owner, group in [("", ""), ("-R", ""), ("", "--from=x"), ("a:b", ""), ("a b", ""), ("a", "b;c")]:
        with pytest.raises(InvalidArgument):
            paths.owner_spec(owner, group)


def test_compression() -> None:
    assert paths.require_compression("") == "gzip"
    for c in ("none", "gzip", "bzip2", "xz"):
        assert paths.require_compression(c) == c
    with pytest.raises(InvalidArgument, match="zip"):
        paths.require_compression("zip")


def test_counts() -> None:
    assert paths.count(None, "n") is None
    assert paths.count(3.0, "n") == 3
    assert paths.count(0.0, "n") == 0
    for bad in (-1.0, 1.5, float("nan"), float("inf")):
        with pytest.raises(InvalidArgument):
            paths.count(bad, "n")
    with pytest.raises(InvalidArgument):
        paths.count(0.0, "size", minimum=1)


def test_head_tail_slice() -> None:
    assert paths.head_tail_slice(None, None, False, "skipTrailing") == paths.Slice("lines", 10, False)
    assert paths.head_tail_slice(5, None, True, "skipTrailing") == paths.Slice("lines", 5, True)
    assert paths.head_tail_slice(None, 7, False, "skipHeading") == paths.Slice("bytes", 7, False)
    with pytest.raises(InvalidArgument, match="Only one of"):
        paths.head_tail_slice(1, 1, False, "skipTrailing")
    with pytest.raises(InvalidArgument, match="skipHeading"):
        paths.head_tail_slice(None, None, True, "skipHeading")


def test_view_window() -> None:
    assert paths.view_window(None, None, 100) == paths.Window(0, None)
    assert paths.view_window(10, 5, 100) == paths.Window(5, 10)
    assert paths.view_window(100, 0, 100) == paths.Window(0, 100)
    with pytest.raises(PayloadTooLarge, match="transfer"):
        paths.view_window(101, 0, 100)
    with pytest.raises(InvalidArgument):
        paths.view_window(0, 0, 100)
    with pytest.raises(InvalidArgument):
        paths.view_window(None, -1, 100)


# ------------------------------------------------------------------------------- commands: quoting


def _commands(p: str) -> list[files.FileCommand[object]]:
    part = paths.Slice("lines", 3, True)
    return [
        files.ListFiles(p, True, False, True, False),
        files.Stat(p, True),
        files.Head(p, part, 100),
        files.Tail(p, part, 100),
        files.ReadRange(p, 1, 2, 100),
        files.ReadFile(p, 100),
        files.Checksum(p),
        files.FileType(p),
        files.Mkdir(p, True),
        files.Symlink(p, p + ".lnk"),
        files.Chmod(p, "u+x"),
        files.Chown(p, "alice:f7t"),
        files.Remove(p),
        files.Compress(paths.split_for_archive(p), p + ".tgz", "gzip", True, ".*"),
        files.Compress(paths.split_for_archive(p), p + ".tgz", "xz", False, ""),
        files.Extract(p, p + ".d", "bzip2"),
        files.Upload(p, b"data"),
    ]  # type: ignore[return-value]


@pytest.mark.parametrize("p", HOSTILE)
def test_caller_values_stay_single_argv_elements(p: str) -> None:
    for cmd in _commands(p):
        argv = cmd.argv()
        assert shlex.split(cmd.command()) == argv
        assert argv[:6] == ["env", "LC_ALL=C", "timeout", "-k", "5", str(files.OPS_TIMEOUT)]
        argv = argv[2:]
        # the path is an argv element of its own (or dd's if= operand), never inside a script
        assert p in argv or f"if={p}" in argv or paths.split_for_archive(p).name in argv, cmd
        if argv[4] == "sh":
            assert argv[5] == "-c" and argv[7] == "sh"
            fixed = ("ls.sh", "then_describe.sh", "compress_matching.sh", "upload.sh")
            assert argv[6] in {scripts.load(name) for name in fixed}
        else:
            # every element equal to a caller value follows "--" or is the value of an option
            # that takes one (tar -f/-C), so it can never be read as an option
            for i, a in enumerate(argv):
                if a in (p, p + ".tgz", p + ".d", p + ".lnk") or (
                    a == paths.split_for_archive(p).name and i > 4
                ):
                    assert argv[i - 1] in ("-f", "-C") or "--" in argv[:i], (a, argv)


def test_upload_temporary_file_is_hidden_next_to_the_target() -> None:
    up = files.Upload("/home/alice/dir/file name", b"x")
    assert up.tmp.startswith("/home/alice/dir/.f7t-upload-") and up.stdin == b"x"
    assert up.argv()[-3:] == ["/home/alice/dir/file name", up.tmp, "1"]
    assert files.Upload("/top", b"").tmp.startswith("/.f7t-upload-")


def test_head_and_tail_options() -> None:
    assert files.Head("/f", paths.Slice("lines", 3, False), 1).tool_argv() == ["head", "-n", "3", "--", "/f"]
    assert files.Head("/f", paths.Slice("bytes", 3, True), 1).tool_argv() == ["head", "-c", "-3", "--", "/f"]
    assert files.Tail("/f", paths.Slice("lines", 3, False), 1).tool_argv() == ["tail", "-n", "3", "--", "/f"]
    assert files.Tail("/f", paths.Slice("lines", 3, True), 1).tool_argv() == ["tail", "-n", "+3", "--", "/f"]


# ------------------------------------------------------------------------------- parsing


def _record(mode: str, name: str, target: str = "", user: str = "alice") -> bytes:
    return (
        b"\0".join(
            x.encode() for x in (mode, user, "staff", "42", "2025-01-02+03:04:05.1234567890", target, name)
        )
        + b"\0"
    )


def test_parse_entries_is_exact_for_any_name() -> None:
    out = (
        _record("-rw-r--r--", "new\nline  with spaces ")
        + _record("lrwxrwxrwx", "ln", "/target -> x")
        + _record("drwxr-x---", "sub/dir")
    )
    a, b, c = files.parse_entries(out)
    assert a == FileEntry(
        "new\nline  with spaces ", "-", None, "alice", "staff", "rw-r--r--", "2025-01-02T03:04:05", "42"
    )
    assert b.type == "l" and b.link_target == "/target -> x" and b.permissions == "rwxrwxrwx"
    assert c.type == "d" and c.name == "sub/dir"
    assert files.parse_entries(b"") == []
    # a name that is not UTF-8 still parses (shown with \x escapes)
    (d,) = files.parse_entries(_record("-rw-------", "x").replace(b"\0x\0", b"\0\xff\xfe\0"))
    assert d.name == "\\xff\\xfe"
    with pytest.raises(GatewayError):
        files.parse_entries(b"a\0b\0")


def test_listing_ids_are_named_once_per_ttl() -> None:
    now = [100.0]
    names = files.IdNames(ttl=60, clock=lambda: now[0])
    fields = files.listing_fields(_record("-rw-r--r--", "b", user="4242") + _record("-rw-r--r--", "a", user="1001"))
    uids, gids = files.listing_ids(fields)
    assert (uids, gids) == ({"1001", "4242"}, {"staff"})
    assert names.names(uids, gids) == (None, None)  # nothing known: the ids stay, no map to apply
    lookup = names.unknown(uids, gids)
    assert lookup is not None and lookup.uids == ["1001", "4242"] and lookup.gids == []  # "staff" is no id
    # getent prints the ids it knows (passwd lines have 7 fields, group lines 4); 4242 has no name
    out = b"alice:x:1001:1002:Alice,,,:/home/alice:/bin/bash\nstaff:x:50:alice,bob\n"
    found = lookup.parse(ExecResult(2, out, b""))
    assert found == ({"1001": "alice"}, {"50": "staff"})
    names.learn(lookup, found)
    users, groups = names.names(uids, gids)
    assert users == {"1001": "alice", "4242": "4242"} and groups is None  # "staff" is a name already
    assert [(e.name, e.user, e.group) for e in files.ListFiles.entries(fields, users, groups)] == [
        ("a", "alice", "staff"),  # sorted by name, named as they are made
        ("b", "4242", "staff"),
    ]
    assert [(e.name, e.user) for e in files.ListFiles.entries(fields)] == [("a", "1001"), ("b", "4242")]
    assert names.unknown(uids, gids) is None  # cached, the unnamed id too
    now[0] += 61
    assert names.unknown(uids, gids) is not None
    # never `getent passwd` without keys (that would enumerate every account)
    argv = files.LookupIds(["1001", "x; rm"], []).argv()
    assert argv[:2] == ["sh", "-c"] and argv[-2:] == ["1001", ""]


def test_parse_stat_and_checksum() -> None:
    st = files.Stat("/f", False).parse(ExecResult(0, b"81a4 123 2049 1 1001 1002 5 10 20 30\n", b""))
    assert st == FileStatus(0o100644, 123, 2049, 1, 1001, 1002, 5, 10, 20, 30) and st.is_regular
    assert files.Stat("/d", False).parse(ExecResult(0, b"41ed 1 1 2 0 0 4096 1 1 1\n", b"")).is_directory
    h = "a" * 64
    assert files.Checksum("/f").parse(ExecResult(0, f"{h}  /f\n".encode(), b"")) == h
    # sha256sum escapes a name with a newline or backslash and marks the line with a backslash
    assert files.Checksum("/f").parse(ExecResult(0, f"\\{h}  /new\\nline\n".encode(), b"")) == h


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "stderr", "cls"),
    [
        (1, "ls: cannot access '/x': No such file or directory", NotFound),
        (1, "find: '/x': No such file or directory", NotFound),
        (1, "sh: 5: cannot create /x/.f7t-upload-1: Directory nonexistent", NotFound),
        (2, "tar: /x.tgz: Cannot open: No such file or directory", NotFound),
        (1, "find: '/root': Permission denied", PermissionDenied),
        (1, "chmod: changing permissions of '/etc/passwd': Operation not permitted", PermissionDenied),
        (1, "touch: cannot touch '/ro/x': Read-only file system", PermissionDenied),
        (1, "mkdir: cannot create directory '/x': File exists", InvalidArgument),
        (1, "chmod: invalid mode: 'x'", InvalidArgument),
        (1, "chown: invalid user: 'nobody-x'", InvalidArgument),
        (1, "sha256sum: /d: Is a directory", InvalidArgument),
        (1, "rm: refusing to remove '.' or '..' directory: skipping '/x/.'", InvalidArgument),
        (2, "gzip: stdin: not in gzip format\ntar: Child returned status 1", InvalidArgument),
        (1, "cat: write error: No space left on device", FailedPrecondition),
        (1, "something nobody foresaw", FailedPrecondition),
        (124, "", Timeout),
        (137, "", Timeout),
    ],
)
def test_file_errors_map_to_what_the_caller_did(status: int, stderr: str, cls: type) -> None:
    e = files.file_error(ExecResult(status, b"", stderr.encode()))
    assert type(e) is cls
    if stderr:
        # the message is the tool's text, less where in our own script it came from ("sh: 5: ")
        assert re.sub(r"^sh: \d+: ", "", stderr.strip()) in e.message
        assert not e.message.startswith("sh: ")


def test_a_missing_tool_is_an_internal_error() -> None:
    e = files.file_error(ExecResult(127, b"", b"sh: 1: file: not found"))
    assert e.reason is Reason.INTERNAL


# ------------------------------------------------------------------------------- upload form


def _form(parts: list[tuple[bytes, bytes]], boundary: bytes = b"BoUnDaRy") -> bytes:
    out = b""
    for headers, content in parts:
        out += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--" + boundary + b"--\r\nepilogue"


def test_upload_form_returns_the_file_part_exactly() -> None:
    content = b"\r\n--BoUnDar\r\n\x00\xff binary \r\n\r\n"
    body = _form(
        [
            (b'Content-Disposition: form-data; name="other"', b"x"),
            (
                b'Content-Disposition: form-data; name="file"; filename="a b.txt"\r\nContent-Type: x/y',
                content,
            ),
        ]
    )
    form = parse_upload_form("multipart/form-data; boundary=BoUnDaRy", body)
    assert form == type(form)("a b.txt", content)
    quoted = parse_upload_form('Multipart/Form-Data; charset=utf-8; boundary="BoUnDaRy"', body)
    assert quoted.content == content


def test_upload_form_file_names() -> None:
    def name(disposition: bytes) -> str | None:
        body = _form([(b"Content-Disposition: " + disposition, b"x")])
        return parse_upload_form("multipart/form-data; boundary=BoUnDaRy", body).filename

    assert name(b'form-data; name="file"; filename="q\\"uote.txt"') == 'q"uote.txt'
    assert name(b'form-data; name="file"; filename="back\\slash"') == "back\\slash"
    assert name('form-data; name="file"; filename="ünï ✓"'.encode()) == "ünï ✓"
    # RFC 7578 4.2: no `filename*` in a form; the plain name counts (as FirecREST v2 reads it)
    assert name(b'form-data; name="file"; filename="x"; filename*=UTF-8\'\'%C3%BC%20y') == "x"
    assert name(b'form-data; name="file"; filename="C:\\dir\\x.txt"') == "x.txt"
    assert name(b'form-data; name="file"; filename="a;b=c"') == "a;b=c"
    assert name(b'form-data; name="file"') is None
    assert name(b'form-data; name="file"; filename=""') is None


@pytest.mark.parametrize(
    ("content_type", "body", "fragment"),
    [
        ("text/plain", b"x", "multipart/form-data"),
        ("", b"x", "multipart/form-data"),
        ("multipart/form-data", b"x", "boundary"),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\nx',
            "closing",
        ),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n--B--',
            "`file`",
        ),
        ("multipart/form-data; boundary=B", b"--B--\r\n", "`file`"),
        ("multipart/form-data; boundary=B", b"--Bjunk\r\n\r\n\r\nx\r\n--B--", "malformed"),
        # a preamble before the first boundary: refused, as FirecREST v2 (python-multipart) does
        (
            "multipart/form-data; boundary=B",
            b'preamble\r\n--B\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--B--',
            "malformed",
        ),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="\xff"\r\n\r\nx\r\n--B--',
            "not UTF-8",
        ),
        ("multipart/form-data; boundary=" + "B" * 300, b"--B--", "malformed"),
        ("multipart/form-data; boundary=✓", b"--B--", "malformed"),
    ],
)
def test_malformed_upload_forms_are_invalid(content_type: str, body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        parse_upload_form(content_type, body)


def test_a_filesystem_request_stays_inside_the_systems_file_systems() -> None:
    roots = ["/home", "/scratch/"]
    for ok in ("/home", "/home/alice/x", "/scratch/a", "/home/alice/../bob", "//home/alice"):
        assert paths.in_file_systems(ok, roots, "c") == ok
    for bad in ("/", "/etc/passwd", "/homes/x", "/home/../etc", "/scratchy"):
        with pytest.raises(InvalidArgument, match="does not match any of the defined filesystem paths"):
            paths.in_file_systems(bad, roots, "c")


def test_an_audit_line_names_a_script_instead_of_carrying_its_code() -> None:
    argv = scripts.argv("ls.sh", "/home/alice/a b", "0")
    assert "exec find" in argv[2]  # the code itself travels to the login node
    assert scripts.shown(argv) == "ls.sh '/home/alice/a b' 0"
    assert scripts.shown(["sh", "-c", "echo hi", "sh"]) is None  # not one of the package's scripts
    assert scripts.shown(["sacct", "-P"]) is None
