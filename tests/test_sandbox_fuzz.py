"""Property test: whatever arrives at the sandbox's routes (random JSON bodies, random query values),
the answer is never a 500 and always carries the §5.2 envelope. Faults are off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s
from test_sandbox_support import PASSWORD_KEY, login

from phrsync.sandbox.server import SandboxThread, running
from phrsync.sandbox.settings import SandboxConfig

ENVELOPE = {"result", "MessageCode", "Message", "RequestTime", "EndpointIP", "EndpointPort", "processing_time_ms"}
UPLOADS = ["UpdatePHRv1", "ImmunizationRegisterv1", "AllergyIntolerancev1", "PatientChronicRegisterv1",
           "OrgEncounterSummary", "UpdateAgentStatus", "GetAgentComputerName", "WebApp?Action=Encounter",
           "ReferralRequest", "MedicationRequest", "DrugRelatedProblem", "CareGiver", "SelfObservation"]
GETS = ["OrganizationSummary", "RemoveEncounter", "CodingSystem", "WebApp"]
PARAMS = ["data", "date", "month", "hospital_code", "cd_code", "encounter_ref_code", "System", "Action", "cid",
          "mode"]

json_values = s.recursive(
    s.none() | s.booleans() | s.integers(-10**6, 10**6) | s.floats(allow_nan=False, allow_infinity=False)
    | s.text(max_size=20),
    lambda kids: s.lists(kids, max_size=4) | s.dictionaries(
        s.sampled_from(["managingOrganization", "Patient", "Encounter", "identifier", "value", "period", "start",
                        "Immunization", "ChronicDiseaseRegister", "EncounterSummary", "hospital_code", "cid",
                        "scope", "x"]), kids, max_size=5),
    max_leaves=25)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxThread, httpx.Client]]:
    cfg = SandboxConfig(data_dir=Path(tmp_path_factory.mktemp("fuzz")), password_key=PASSWORD_KEY,
                        rate_limit_per_minute=0, agent_status_interval=0)
    with running(cfg) as st:
        c = login(st, "99999")
        yield st, c
        c.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=s.sampled_from(UPLOADS), body=json_values, raw=s.booleans(), junk=s.binary(max_size=30))
def test_random_bodies_never_500(fuzz_server: tuple[SandboxThread, httpx.Client], route: str, body: object,
                                 raw: bool, junk: bytes) -> None:
    _, c = fuzz_server
    content = junk if raw else orjson.dumps(body)
    r = c.post(f"/api/{route}", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    assert set(r.json()) >= ENVELOPE


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=s.sampled_from(GETS), params=s.dictionaries(s.sampled_from(PARAMS), s.text(max_size=15), max_size=4))
def test_random_queries_never_500(fuzz_server: tuple[SandboxThread, httpx.Client], route: str,
                                  params: dict[str, str]) -> None:
    _, c = fuzz_server
    r = c.get(f"/api/{route}", params=params)
    assert r.status_code < 500 or r.status_code == 501, r.text  # 501 = WebApp Action not in the sandbox
    assert set(r.json()) >= ENVELOPE
