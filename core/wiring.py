"""Builds the object graph from the configuration, in one place."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from core.adapters.certs import CertificateAuthority, UserKey
from core.adapters.cluster import Cluster
from core.adapters.ssh import SSHPool
from core.config import Config
from core.domain.errors import SystemNotFound


class UserKeys:
    """Per-user key + certificate, minted on demand and renewed before expiry."""

    def __init__(self, ca: CertificateAuthority):
        self.ca = ca
        self._keys: dict[str, UserKey] = {}
        self._lock = threading.Lock()

    def __call__(self, user: str) -> UserKey:
        with self._lock:
            k = self._keys.get(user)
            margin = min(60, self.ca.lifetime / 5)
            if k is None or k.cert.valid_before - margin <= time.time():
                k = self._keys[user] = self.ca.new_user_key(user)
            return k


class Gateway:
    def __init__(self, config: Config):
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=config.worker_threads, thread_name_prefix="ssh")
        self.ca = CertificateAuthority(
            config.certificate.ca_key, config.certificate.lifetime, config.certificate.key_id_prefix
        )
        self.keys = UserKeys(self.ca)
        self.clusters: dict[str, Cluster] = {
            s.name.lower(): Cluster(s, SSHPool(s.ssh, self.keys, self.executor)) for s in config.systems
        }

    def cluster(self, name: str) -> Cluster:
        c = self.clusters.get(name.lower())
        if c is None:
            raise SystemNotFound(f"system '{name}' does not exist", metadata={"system": name})
        return c

    def close(self) -> None:
        for c in self.clusters.values():
            c.pool.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
