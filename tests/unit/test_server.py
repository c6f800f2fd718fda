"""The core's start: every service's servicer is imported up front, so a servicer that cannot be
imported stops the server at start instead of answering 501 (UNIMPLEMENTED) at run time."""

from __future__ import annotations

import sys

import pytest

from core import server


def test_every_service_has_its_own_servicer() -> None:
    names = {svc.full_name: servicer.__name__ for svc, _, servicer, _ in server._services()}
    assert names == {
        "firecrest.status.v1.StatusService": "StatusServicer",
        "firecrest.certificate.v1.CertificateService": "CertificateServicer",
        "firecrest.compute.v1.ComputeService": "ComputeServicer",
        "firecrest.storage.v1.StorageService": "StorageServicer",
        "firecrest.tasks.v1.TasksService": "TasksServicer",
    }


def test_a_servicer_that_fails_to_import_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "core.api.storage", None)  # any import of it now fails
    with pytest.raises(ImportError):
        server._services()


async def _loop_module(out: list[str]) -> None:
    import asyncio

    out.append(type(asyncio.get_running_loop()).__module__)


@pytest.mark.parametrize(("setting", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio.unix_events")])
def test_the_core_runs_on_the_configured_event_loop(setting: str, module: str) -> None:
    seen: list[str] = []
    server.run_loop(_loop_module(seen), setting)
    assert seen == [module]


def test_without_uvloop_the_core_runs_on_asyncio(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not installed
    seen: list[str] = []
    server.run_loop(_loop_module(seen), "uvloop")
    assert seen == ["asyncio.unix_events"]
    assert "not installed" in caplog.text
