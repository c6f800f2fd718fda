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
