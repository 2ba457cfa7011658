"""A small real province for the monitoring web's tests: synth → import → build → sandbox → sync, the same library
calls as ``phrsync demo``, with the sandbox kept running (for "send again") and the data recent enough for the
overview's last 90 days. ``with province(tmp) as p: ...``."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from phrsync.config import Config
from phrsync.delivery.agent import sync
from phrsync.delivery.config import Credentials, DeliverySettings, Target
from phrsync.delivery.outbox import ndjson_facilities
from phrsync.f43.api import import_sources
from phrsync.phr.api import build_payloads
from phrsync.sandbox.server import SandboxThread, running
from phrsync.sandbox.settings import SandboxConfig
from phrsync.synth import SynthOptions
from phrsync.synth.api import synthesize
from phrsync.web import model


@dataclass
class Province:
    root: Path
    staging: Path
    payloads: Path
    state_url: str
    sandbox: SandboxThread
    settings: DeliverySettings
    facilities: list[str] = field(default_factory=list)  # the facilities of the build, by code

    def sources(self, **kw: Any) -> model.Sources:
        return model.Sources(state_url=self.state_url, staging=self.staging, build_file=self.payloads,
                             sandbox_data_dir=self.root / "sandbox", **kw)

    def build(self) -> None:
        """(Re)build the payloads from staging: what a province does after fixing data in the HIS."""
        build_payloads(Config(data_dir=self.root), self.payloads, staging=self.staging)

    def sync(self) -> dict[str, Any]:
        return sync(self.settings, self.payloads).as_dict()

    def break_one(self, hospcode: str) -> str:
        """A data defect PHR refuses, in one encounter payload of ``hospcode`` in the build file (its Patient
        without birthDate); returns the payload's key. Fixed by :meth:`build` from the staging store."""
        lines = self.payloads.read_bytes().splitlines()
        for i, line in enumerate(lines):
            item = orjson.loads(line)
            if item["hospcode"] == hospcode and item["endpoint"] == "UpdatePHRv1":
                item["payload"]["Patient"].pop("birthDate", None)
                head = {k: item[k] for k in ("day", "endpoint", "hospcode", "key") if k in item}
                lines[i] = orjson.dumps({**head, "payload": item["payload"]}, option=orjson.OPT_SORT_KEYS)
                self.payloads.write_bytes(b"\n".join(lines) + b"\n")
                return str(item["key"])
        raise AssertionError(f"no encounter of {hospcode} in the build")


def recent_start(months: int = 3) -> str:
    """The synthesizer's most recent ``months`` months (see :func:`phrsync.synth.clock.recent_start`)."""
    from phrsync.synth.clock import recent_start as start

    return start(months)


@contextlib.contextmanager
def province(root: Path, encounters: int = 400, seed: int = 5, dirty: float = 0.02) -> Iterator[Province]:
    """Build the province under ``root`` and send it once (no faults); the sandbox stays up until the end."""
    root.mkdir(parents=True, exist_ok=True)
    exports = root / "exports"
    synthesize(SynthOptions(province="27", encounters=encounters, seed=seed, dirty=dirty, start=recent_start(3),
                            months=3), exports, workers=1)
    staging = root / "staging.duckdb"
    import_sources(staging, [exports])
    payloads = root / "payloads.ndjson"
    build_payloads(Config(data_dir=root), payloads, staging=staging)
    state = f"sqlite:///{(root / 'outbox.sqlite').resolve()}"
    with running(SandboxConfig(data_dir=root / "sandbox", rate_limit_per_minute=0)) as srv:
        password = secrets.token_urlsafe(12)
        facs = sorted(ndjson_facilities(payloads))
        creds = {h: Credentials(f"u{h}", srv.add_user(f"u{h}", h, password)) for h in facs}
        settings = DeliverySettings(target=Target(name="sandbox", base_url=srv.base_url, timeout=10,
                                                  rate_per_minute=0, backoff_base=0.01),
                                    state_url=state, facility_credentials=creds, agent_version="phrsync test")
        p = Province(root=root, staging=staging, payloads=payloads, state_url=state, sandbox=srv,
                     settings=settings, facilities=facs)
        p.sync()
        yield p
