"""The ``phrsync`` command. Each package owns its verbs in its own ``cli.py``; this file only lists them and
imports a verb's module when that verb runs, so ``phrsync --help`` stays fast."""

from __future__ import annotations

import importlib
import os

import click

from phrsync import __version__

# verb -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "import": "phrsync.f43.cli:import_cmd",
    "quarantine": "phrsync.f43.cli:quarantine_cmd",
    "staging": "phrsync.f43.cli:staging_cmd",
    "synth": "phrsync.synth.cli:synth_cmd",
    "codes": "phrsync.terminology.cli:codes_cmd",
    "build": "phrsync.phr.cli:build_cmd",
    "validate": "phrsync.phr.cli:validate_cmd",
    "sandbox": "phrsync.sandbox.cli:sandbox_cmd",
    "sync": "phrsync.delivery.cli:sync_cmd",
    "status": "phrsync.delivery.cli:status_cmd",
    "retry": "phrsync.delivery.cli:retry_cmd",
    "run": "phrsync.delivery.cli:run_cmd",
    "config": "phrsync.config_cli:config_cmd",
    "web": "phrsync.web.cli:web_cmd",
    "demo": "phrsync.demo:demo_cmd",
}


def _load(verb: str) -> click.Command | None:
    target = COMMANDS.get(verb)
    if not target:
        return None
    mod_name, attr = target.split(":")
    cmd = getattr(importlib.import_module(mod_name), attr)
    assert isinstance(cmd, click.Command), target
    return cmd


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        """A :class:`~phrsync.errors.PhrsyncError` from any command: its message on stderr, its exit code."""
        from phrsync.errors import PhrsyncError

        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        ctx.meta["phrsync.help"] = not rest or any(a in ("-h", "--help") for a in rest)
        try:
            return super().invoke(ctx)
        except PhrsyncError as e:
            click.echo(f"ผิดพลาด / error: {e}", err=True)
            ctx.exit(int(e.exit_code))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _load(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="phrsync")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="PHRSYNC_CONFIG",
              help="phrsync.toml (ค่าตั้งต้น: ./phrsync.toml ถ้ามี) / configuration file")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """phrsync — ส่งข้อมูล 43 แฟ้มเข้า MOPH-PHR (หมอพร้อม) / 43-file data to MOPH-PHR.

    \b
    ลำดับงาน / data flow:
      synth → import → build → sandbox/sync → status → web
    """
    from phrsync.config import load_config
    from phrsync.errors import ConfigError

    _private_files(ctx)
    ctx.ensure_object(dict)
    try:
        ctx.obj["config"] = load_config(config_path)
    except ConfigError as e:
        if not ctx.meta.get("phrsync.help"):  # every command refuses a broken phrsync.toml; --help still answers
            raise
        ctx.obj["config_error"] = e


def _private_files(ctx: click.Context) -> None:
    """Every file and folder phrsync creates is readable by the user it runs as only (umask + 077).

    Nearly all of it holds personal data — the staging DuckDB and its .wal, the outbox and sandbox SQLite
    files, payloads, reports — and under the usual umask 022 each was created 0644, readable by every local
    account. DuckDB cannot be handed a file created private beforehand, so the process umask is what makes its
    files private from their first byte. The previous umask comes back when the command ends (tests run the
    CLI in-process)."""
    old = os.umask(0o077)
    os.umask(old | 0o077)
    ctx.call_on_close(lambda: os.umask(old))


def main() -> None:
    cli(prog_name="phrsync")
