"""``phrsync demo``: the whole main job on the embedded default, on one machine, with no server to install.

Each step calls the same library functions as the real commands (never a click command, never their printed
output), so a demo that works is evidence that the product works: synthesize a province → import into staging → build and validate payloads →
(when available) send to the local MOPH-PHR server and reconcile.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from phrsync.thai import bilingual

# The Digital ID step checks this many residents and this many staff per district (a fixed draw, said in the
# output): the whole synthetic province (~16,000 people at -n 3000) would take about a minute over HTTP on a
# small machine, and the step is there to show the check and the table, not to load-test them
# (benchmarks/did_bench.py does that).
DID_SAMPLE = 150


def _step(title_th: str, title_en: str, quiet: bool) -> None:
    if not quiet:
        click.secho(f"\n▶ {bilingual(title_th, title_en)}", bold=True)


@click.command("demo")
@click.option("--encounters", "-n", type=click.IntRange(min=100), default=3_000, show_default=True,
              help="จำนวนครั้งบริการที่สร้าง / synthetic encounters to generate")
@click.option("--seed", type=int, default=1, show_default=True, help="ค่าเริ่มสุ่ม / random seed")
@click.option("--dirty", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="สัดส่วนข้อมูลผิดที่ใส่เพื่อสาธิตการกักแถว / share of defective rows, to show quarantine")
@click.option("--data-dir", type=click.Path(file_okay=False), default="data/demo", show_default=True,
              help="โฟลเดอร์ข้อมูลของการสาธิต / folder for everything the demo writes")
@click.option("--faults", "fault_rate", type=click.FloatRange(0, 0.5), default=0.1, show_default=True,
              help="สัดส่วนคำขอที่เซิร์ฟเวอร์จำลองตอบผิดพลาด / share of requests the local server fails on purpose")
@click.option("--did-sample", type=click.IntRange(min=0), default=DID_SAMPLE, show_default=True,
              help="ตรวจ Digital ID เฉพาะตัวอย่างกี่คนต่ออำเภอ (0 = ทุกคน) / Digital ID step: check a sample of this "
                   "many people per district of each list (0 = everyone)")
@click.option("--serve", is_flag=True, help="เปิดเว็บติดตามการส่งข้อมูลบนข้อมูลของการสาธิตต่อ (พร้อมเซิร์ฟเวอร์ทดสอบ) / "
                                           "then serve the monitoring web on the demo's data (and the sandbox)")
@click.option("--json", "as_json", is_flag=True, help="ผลลัพธ์แบบ JSON / machine-readable summary")
@click.pass_context
def demo_cmd(ctx: click.Context, encounters: int, seed: int, dirty: float, data_dir: str, fault_rate: float,
             did_sample: int, serve: bool, as_json: bool) -> None:
    """สาธิตงานหลักทั้งหมดบนเครื่องนี้ / run the whole main job locally on synthetic data.

    \b
    ขั้นตอน / steps: synth → import → build → sandbox → sync (→ sync again: nothing to send)
    """
    from phrsync.config import config_from_context
    from phrsync.f43.api import import_sources
    from phrsync.phr.api import build_payloads
    from phrsync.synth import SynthOptions
    from phrsync.synth.api import synthesize
    from phrsync.synth.clock import recent_start

    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"data_dir": str(root)}
    quiet = as_json

    _step("สร้างข้อมูล 43 แฟ้มสังเคราะห์ จ.สระแก้ว", "synthesize Sa Kaeo 43-file exports", quiet)
    exports = root / "exports"
    # the synthesizer's last three months: what the monitoring web shows falls in its last 90 days
    synth = synthesize(SynthOptions(province="27", encounters=encounters, seed=seed, dirty=dirty,
                                    start=recent_start(3), months=3), exports,
                       workers=2)
    sd = synth.to_dict()
    summary["synth"] = {"out": str(exports), "seconds": sd.get("seconds"), "zips": sd.get("zips"),
                        "rows": sd.get("rows_total", sd.get("rows"))}
    if not quiet:
        click.echo(f"  {exports} ({summary['synth']['zips']} zip)")

    _step("นำเข้าที่พักข้อมูล (staging) พร้อมตรวจแถว", "import into staging with row checks", quiet)
    staging_path = root / "staging.duckdb"
    d = import_sources(staging_path, [exports]).to_dict()
    summary["import"] = {k: d[k] for k in ("rows_read", "rows_loaded", "rows_quarantined", "seconds")}
    summary["import"]["staging"] = str(staging_path)
    if not quiet:
        click.echo(f"  อ่าน/read {d['rows_read']:,} แถว/rows, ผ่าน/loaded {d['rows_loaded']:,}, "
                   f"กักไว้/quarantined {d['rows_quarantined']:,} ({d['seconds']:.1f} s)")
        for rule, v in sorted(d["quarantine_by_reason"].items(), key=lambda kv: -kv[1]["total"])[:8]:
            click.echo(f"    {v['total']:>6,}  {rule}: {v['reason_th']} / {v['reason_en']}")

    _step("นำเข้ารหัสยา TMT และบัญชียา (สังเคราะห์) เข้าฐานรหัส", "import the (synthetic) TMT release and drug catalogue",
          quiet)
    code_store = root / "codes.sqlite"
    summary["codes"] = import_demo_codes(code_store, (synth.zips or {}).get("codes"))
    if not quiet:
        c = summary["codes"]
        click.echo(f"  {code_store}: TMT {c['release']} ({c['concepts']:,} concepts), "
                   f"{bilingual('บัญชียา', 'catalogue')} {c['drugs']:,}")

    _step("สร้างและตรวจ payload MOPH-PHR (ยังไม่ส่ง) พร้อมรายงานคุณภาพข้อมูล",
          "build and validate MOPH-PHR payloads (dry run) with the data-quality report", quiet)
    payloads, report = root / "payloads.ndjson", root / "report.html"
    res = build_payloads(config_from_context(ctx), payloads, staging=staging_path, report=report,
                         code_store=code_store).result
    summary["build"] = {"built": res.total("built"), "refused": res.total("refused"),
                        "skipped": res.total("skipped"), "waiting": res.total("waiting"),
                        "seconds": round(res.seconds, 2),
                        "encounters_per_second": round(res.encounters_per_second, 1),
                        "payloads": str(payloads), "report": str(report)}
    if not quiet:
        b = summary["build"]
        click.echo(f"  สร้าง/built {b['built']:,}, ปฏิเสธ/refused {b['refused']:,}, "
                   f"ข้าม/skipped {b['skipped']:,}, รอรหัสยา/waiting for a code {b['waiting']:,} ({b['seconds']:.1f} s)")
        click.echo(f"  {payloads}\n  {report}")

    _step("เปิดเซิร์ฟเวอร์ MOPH-PHR จำลองบนเครื่องนี้ แล้วส่งข้อมูล (มีข้อผิดพลาดเครือข่ายจำลอง)",
          "start the local MOPH-PHR server and send (with injected network faults)", quiet)
    summary["sync"], summary["sync_again"], url = _send(root, payloads, fault_rate, quiet)
    _step("ตรวจ Digital ID (check_ekyc) ของประชาชนและบุคลากรสังเคราะห์ แล้วคำนวณ KPI 54",
          "check the synthetic people's Digital IDs (check_ekyc) and compute KPI 54", quiet)
    summary["did"] = _did(root, staging_path, quiet, did_sample or None)
    sandbox_dir = root / "sandbox"
    exe = _phrsync()
    summary["sandbox"] = {"data_dir": str(sandbox_dir),
                          "serve": f"{exe} sandbox --data-dir {sandbox_dir} serve --port 8787",
                          "dashboard": "http://127.0.0.1:8787/dashboard"}

    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    else:
        click.secho("\n✔ " + bilingual("เสร็จ", "done"), bold=True)
        click.echo(bilingual("ดูแถวที่ถูกกัก", "see quarantined rows") +
                   f": {exe} quarantine summary --staging {staging_path}")
        click.echo(bilingual("สถานะการส่งต่อหน่วยบริการ", "delivery status per facility") +
                   f": {exe} status --target sandbox --state {root / 'outbox.sqlite'} -i {payloads}")
        click.echo(bilingual("ดูสิ่งที่ศูนย์ PHR เห็น (แดชบอร์ด)", "see what the PHR centre sees (dashboard)") +
                   f": {summary['sandbox']['serve']}  →  {summary['sandbox']['dashboard']}")
    if serve:
        serve_web(config_from_context(ctx), root, as_json)


def import_demo_codes(store_path: Path, written: dict[str, Any] | None) -> dict[str, Any]:
    """The synthetic TMTRF zip and drug catalogue ``synth`` wrote (``written``: its ``zips["codes"]``) into the
    demo's code store, as ``phrsync codes import-tmt`` / ``import-drugs --format csv`` would: the build then maps
    every invented drug to its GP and every allergy to its substances (0 refused, 0 waiting on clean data)."""
    from phrsync.errors import NotFoundError
    from phrsync.terminology.codestore import CodeStore
    from phrsync.terminology.drugimport import import_drugs
    from phrsync.terminology.tmtimport import import_tmt

    if not written or not written.get("tmt_zip") or not written.get("catalogue"):
        raise NotFoundError("synth ไม่ได้เขียนรหัสยาสังเคราะห์", "synth wrote no synthetic drug codes")
    folder = Path(written["dir"])
    for old in (store_path, store_path.with_name(store_path.name + "-wal"), store_path.with_name(store_path.name + "-shm")):
        old.unlink(missing_ok=True)  # a fresh store each demo run: the synthetic release only
    with CodeStore(store_path) as store:
        td = import_tmt(store, folder / written["tmt_zip"]).to_dict()
        dd = import_drugs(store, folder / written["catalogue"], "csv").to_dict()
    return {"store": str(store_path), "release": td["release"], "concepts": td["concepts_total"],
            "drugs": dd["rows_total"], "with_tmt": dd["with_tmt"]}


def web_admin(root: Path, state_url: str) -> Path:
    """The demo's web account ``admin`` with a new generated password, written to ``<data_dir>/web-admin.txt``
    (mode 600) — the path is printed, never the password (demo data only, but a habit worth keeping)."""
    import os
    import secrets

    from phrsync.web.auth import ADMIN, AuthStore

    password = secrets.token_urlsafe(18)
    store = AuthStore(state_url)
    try:
        store.add_user("admin", password, ADMIN, client="demo")
    finally:
        store.close()
    path = root / "web-admin.txt"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"user: admin\npassword: {password}\n")
    return path


def serve_web(cfg: Any, root: Path, as_json: bool = False, host: str | None = None, port: int | None = None) -> None:
    """After the demo: the monitoring web on its staging, state store and build, beside the sandbox it sent to
    (for the PHR centre view and for "send again", which sends there with fresh demo accounts)."""
    import secrets

    from phrsync import __version__
    from phrsync.delivery.config import Credentials, DeliverySettings, Target
    from phrsync.delivery.outbox import ndjson_facilities
    from phrsync.sandbox.server import running
    from phrsync.sandbox.settings import SandboxConfig
    from phrsync.web import model, server
    from phrsync.web.app import WebOptions, create_app
    from phrsync.web.auth import AuthStore

    state = f"sqlite:///{(root / 'outbox.sqlite').resolve()}"
    payloads = root / "payloads.ndjson"
    src = model.Sources(state_url=state, staging=root / "staging.duckdb", build_file=payloads,
                        sandbox_data_dir=root / "sandbox",
                        silent_days=cfg.settings.web.silent_days or model.Sources.silent_days)
    admin_file = web_admin(root, state)
    with running(SandboxConfig(data_dir=root / "sandbox", rate_limit_per_minute=0)) as srv:
        password = secrets.token_urlsafe(16)  # the sandbox's demo accounts, for "send again"; never printed
        creds = {h: Credentials(f"demo{h}", srv.add_user(f"demo{h}", h, password)) for h in ndjson_facilities(payloads)}
        settings = DeliverySettings(target=Target(name="sandbox", base_url=srv.base_url, timeout=10, rate_per_minute=0,
                                                  backoff_base=0.05),
                                    state_url=state, facility_credentials=creds, agent_version=f"phrsync {__version__}")
        options = WebOptions.from_settings(cfg.settings.web)
        app = create_app(src, options, AuthStore(state, login_attempts=options.login_attempts),
                         delivery=lambda: settings)

        def started(info: server.ServeInfo) -> None:
            d = {**info.to_dict(), "user": "admin", "password_file": str(admin_file),
                 "sandbox_dashboard": f"{srv.base_url}/dashboard"}
            if as_json:
                click.echo(json.dumps(d, ensure_ascii=False))
                return
            click.secho("\n▶ " + bilingual("เว็บติดตามการส่งข้อมูล", "the monitoring web"), bold=True)
            click.echo(f"  {info.url}  (Ctrl-C)")
            click.echo("  " + bilingual(f"ผู้ใช้ admin รหัสผ่านอยู่ในไฟล์ {admin_file}",
                                        f"user admin, its password is in {admin_file}"))
            click.echo("  " + bilingual("แดชบอร์ดเซิร์ฟเวอร์ทดสอบ", "the sandbox's dashboard") +
                       f": {srv.base_url}/dashboard")

        server.serve(cfg, host, port, app=app, on_start=started)


def _phrsync() -> str:
    """The ``phrsync`` to type: the one beside this Python (``.venv/bin/phrsync`` after ``make demo``) unless the
    shell finds that same program as plain ``phrsync``."""
    mine = Path(sys.executable).parent / "phrsync"
    found = shutil.which("phrsync")
    if found and mine.exists() and Path(found).resolve() == mine.resolve():
        return "phrsync"
    if mine.exists():
        try:
            return str(mine.relative_to(Path.cwd()))
        except ValueError:
            return str(mine)
    return "phrsync"


def _send(root: Path, payloads: Path, fault_rate: float, quiet: bool) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Sandbox in a thread, one account per facility, the agent sends everything; then a second run
    that must send nothing (nothing changed)."""
    import secrets

    from phrsync.delivery.agent import sync_payloads
    from phrsync.delivery.config import Credentials
    from phrsync.delivery.outbox import ndjson_facilities
    from phrsync.sandbox.server import running
    from phrsync.sandbox.settings import FaultConfig, SandboxConfig

    each = fault_rate / 4
    faults = FaultConfig(p500=each, p503=each, p429=each, p_drop=each, retry_after=1, seed=7)
    cfg = SandboxConfig(data_dir=root / "sandbox", rate_limit_per_minute=0, faults=faults)
    state = root / "outbox.sqlite"
    with running(cfg) as srv:
        password = secrets.token_urlsafe(16)  # demo accounts only; never printed
        creds = {h: Credentials(f"demo{h}", srv.add_user(f"demo{h}", h, password))
                 for h in ndjson_facilities(payloads)}
        first = sync_payloads(payloads, srv.base_url, creds, state, concurrency=8, timeout=10,
                              backoff_base=0.05).as_dict()
        again = sync_payloads(payloads, srv.base_url, creds, state, concurrency=8, timeout=10,
                              backoff_base=0.05).as_dict()
        url = srv.base_url
    if not quiet:
        total = {k: sum(f.get(k, 0) for f in first["outbox"].values()) for k in ("confirmed", "refused", "failed")}
        click.echo(f"  ส่ง/attempted {first['attempted']:,}; ในคิวหลังจบ (ยืนยันโดย PHR รวมการตรวจทาน) / outbox after "
                   f"the run (confirmed by PHR, incl. reconciliation): ยืนยัน/confirmed {total['confirmed']:,}, "
                   f"ปฏิเสธ/refused {total['refused']:,}, ล้มเหลว/failed {total['failed']:,}; "
                   f"ลองซ้ำ/retries {first['retries']:,} ({first['seconds']:.1f} s)")
        click.echo(f"  รหัสตอบกลับ/status codes: {first['status_codes']}")
        click.echo("  " + bilingual(f"ส่งซ้ำโดยไม่มีอะไรเปลี่ยน: ส่ง {again['sent']} รายการ",
                                    f"second run with nothing changed: sent {again['sent']}"))
    return first, again, url


def _did(root: Path, staging: Path, quiet: bool, sample: int | None = DID_SAMPLE) -> dict[str, Any]:
    """The demo's residents (PERSON) and staff (PROVIDER) as the 43-file fallback lists — ``sample`` people per
    district of each (None: everyone) — checked against the local server, whose IdP register is seeded with
    where they live and deals its answers from Sa Kaeo's shares per district; then the district table."""
    import secrets

    from phrsync.delivery.config import Credentials
    from phrsync.did.check import CheckOptions, run_check
    from phrsync.did.kpi import Targets
    from phrsync.did.population import load_fallback
    from phrsync.did.report import build_report
    from phrsync.did.store import CITIZEN, PERSONNEL, DidStore
    from phrsync.sandbox.server import running
    from phrsync.sandbox.settings import SandboxConfig

    store = DidStore(f"sqlite:///{(root / 'outbox.sqlite').resolve()}")
    lists: dict[str, Any] = {}
    try:
        for kind in (CITIZEN, PERSONNEL):
            if store.source_of(kind) != "import":
                lists[kind] = load_fallback(store, staging, kind, sample=sample).to_dict()["file"]
        cfg = SandboxConfig(data_dir=root / "sandbox", rate_limit_per_minute=0, ekyc_rate_limit_per_minute=0)
        with running(cfg) as srv:
            # the local PHR's IdP register: where the synthetic people live (as PHR knows it from DOPA), so its
            # answers follow each district's share; the check requests themselves carry only the CID
            for kind in (CITIZEN, PERSONNEL):
                srv.seed_register(kind, store.districts_of_people(kind))
            password = secrets.token_urlsafe(16)  # demo account only; never printed
            pw_hash = srv.add_user("demodid", "00017", password)
            opts = CheckOptions(target="sandbox", base_url=srv.base_url,
                                token_url=srv.base_url + "/token?Action=get_moph_access_token",
                                account_hospcode="00017", credentials=Credentials("demodid", pw_hash),
                                concurrency=16, rate_per_minute=0, timeout=10, backoff_base=0.05)
            res = run_check(store, opts)
        rep = build_report(store, Targets())
    finally:
        store.close()
    if not quiet:
        from phrsync.did.cli import print_report

        for file in lists.values():
            click.echo(f"  {file}")
        click.echo(f"  ตรวจ/checked {res.answered:,} คน/people ({res.per_second:.0f}/s, {res.seconds:.1f} s)")
        print_report(rep)
    return {"lists": lists, "sample_per_district": sample, "check": res.to_dict(), "report": rep.to_dict()}
