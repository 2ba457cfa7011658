"""One settings model: every command refuses a broken phrsync.toml the same way; `phrsync config` tells what is
in effect and where it came from, secrets masked; docs/settings.md is the model's own table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from phrsync.cli import COMMANDS, cli
from phrsync.settings import reference_markdown

ROOT = Path(__file__).resolve().parents[1]

# one invocation of every command that would otherwise do something (each must stop at the broken file)
INVOCATIONS = {
    "import": ["import", "somewhere"], "quarantine": ["quarantine", "summary"], "staging": ["staging"],
    "synth": ["synth", "--encounters", "10", "--out", "x"], "codes": ["codes", "list"],
    "build": ["build", "--out", "x.ndjson"], "validate": ["validate", "README.md"],
    "sandbox": ["sandbox", "add-user", "u", "10699"], "sync": ["sync", "--dry-run"], "status": ["status"],
    "retry": ["retry"], "run": ["run", "--once"], "config": ["config"], "demo": ["demo", "-n", "100"],
    "web": ["web", "users"],
}

BROKEN = {
    'data_dir = 5\n': ("data_dir", "must be text"),
    '[delivery]\nevery_minutes = "often"\n': ("[delivery] every_minutes", "must be a number"),
    '[delivery]\nstate_pth = "x.sqlite"\n': ("[delivery] state_pth", "did you mean state_path"),
    '[delivry]\ntarget = "uat"\n': ("delivry", "unknown section"),
    '[targets.local]\nconcurrency = "4"\n': ("[targets.local] concurrency", "must be a whole number"),
    '[policies]\nvisit_end = "later"\n': ("[policies] visit_end", "not one of the allowed values"),
}


def test_every_command_is_listed_here() -> None:
    assert set(INVOCATIONS) == set(COMMANDS)


@pytest.mark.parametrize("verb", sorted(INVOCATIONS))
def test_every_command_refuses_a_broken_configuration(tmp_path: Path, verb: str) -> None:
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text('[delivery]\nevery_minutes = "often"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(cfg), *INVOCATIONS[verb]])
    assert r.exit_code == 2, (verb, r.output)
    assert str(cfg) in r.output and "[delivery] every_minutes" in r.output, r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "data").exists()  # nothing was done


@pytest.mark.parametrize("body", sorted(BROKEN))
def test_the_message_names_file_section_and_key(tmp_path: Path, body: str) -> None:
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text(body, encoding="utf-8")
    r = CliRunner().invoke(cli, ["--config", str(cfg), "config"])
    where, why = BROKEN[body]
    assert r.exit_code == 2
    assert str(cfg) in r.output and where in r.output and why in r.output, r.output


def test_help_still_answers_with_a_broken_file(tmp_path: Path) -> None:
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text("data_dir = 5\n", encoding="utf-8")
    for args in (["--help"], ["build", "--help"], ["sync", "--help"]):
        r = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert r.exit_code == 0, (args, r.output)


def test_a_missing_configuration_file_is_an_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.toml"), "config"])
    assert r.exit_code == 2 and "nope.toml" in r.output


def test_config_shows_effective_values_with_sources_and_masks_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "phrsync.toml"
    cfg.write_text('[delivery]\ntarget = "uat"\nstate_url = "postgresql://phr:s3cretpw@db/phr"\n'
                   '[sandbox]\njwt_secret = "signing-secret-value"\n', encoding="utf-8")
    env = {"PHRSYNC_PHR_PASSWORD": "hunter2-password", "PHRSYNC_PHR_PASSWORD_10699": "facility-pw",
           "PHRSYNC_TARGET": "sandbox"}
    r = CliRunner(env=env).invoke(cli, ["--config", str(cfg), "config", "--json"])
    assert r.exit_code == 0, r.output
    for secret in ("s3cretpw", "signing-secret-value", "hunter2-password", "facility-pw"):
        assert secret not in r.output
    got = {e["key"]: e for e in json.loads(r.output)["settings"]}
    assert got["delivery.target"]["value"] == "sandbox" and got["delivery.target"]["source"] == "env PHRSYNC_TARGET"
    assert got["delivery.state_url"]["value"] == "postgresql://phr:***@db/phr"
    assert got["delivery.state_url"]["source"] == str(cfg)
    assert got["sandbox.jwt_secret"]["value"] == "***"
    assert got["delivery.every_minutes"]["source"].endswith("default") and got["delivery.every_minutes"]["value"] == 60
    assert got["env PHRSYNC_PHR_PASSWORD"]["secret"] is True
    text = CliRunner(env=env).invoke(cli, ["--config", str(cfg), "config"]).output
    assert "postgresql://phr:***@db/phr" in text and "env PHRSYNC_TARGET" in text and "hunter2" not in text


def test_docs_settings_is_the_models_table() -> None:
    """Regenerate with: python -m phrsync.settings > docs/settings.md"""
    assert (ROOT / "docs" / "settings.md").read_text(encoding="utf-8") == reference_markdown()
