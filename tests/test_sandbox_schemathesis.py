"""Schemathesis fuzz run against the sandbox's own /openapi.json: for every operation the schema
describes, generated requests never get a 500. Faults off; a real token so the handlers run, not only auth.

Driven through schemathesis' Python API (``as_strategy``) rather than its pytest plugin, which does not
load under this pytest version."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from test_sandbox_support import PASSWORD_KEY, login

from phrsync.sandbox.server import running
from phrsync.sandbox.settings import SandboxConfig


def test_no_500_for_any_operation_of_the_openapi_schema(tmp_path: Path) -> None:
    cfg = SandboxConfig(data_dir=tmp_path, password_key=PASSWORD_KEY, rate_limit_per_minute=0,
                        agent_status_interval=0)
    with running(cfg) as st:
        client = login(st, "99999")
        auth = {"Authorization": client.headers["Authorization"]}
        schema = schemathesis.openapi.from_url(f"{st.base_url}/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        assert len(operations) >= 10, "the schema should describe the sandbox's routes"
        failures: list[str] = []
        for op in operations:

            @given(case=op.as_strategy())
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case: schemathesis.Case) -> None:
                response = case.call(base_url=st.base_url, headers=auth, timeout=30)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.path}: {response.status_code} {response.text[:200]}")

            check()
        client.close()
    if failures:
        pytest.fail("\n".join(failures[:10]))
