"""Every setting of phrsync in one typed model: the sections of ``phrsync.toml`` and the environment variables.

``phrsync.toml`` is read once per command (``--config``, ``$PHRSYNC_CONFIG`` or ``./phrsync.toml``), checked
against :class:`Settings` (a misspelled key, an unknown section or a wrongly typed value is a
:class:`~phrsync.errors.ConfigError` naming the file, section and key), and passed down. Secrets come only from
the environment (:class:`Environment`, read with pydantic-settings) or from files readable by their owner only.
``phrsync config`` prints the effective values with secrets masked and where each came from; docs/settings.md
is generated from this module (``python -m phrsync.settings``), so the table cannot drift from the code.
"""

from __future__ import annotations

import difflib
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from phrsync.errors import ConfigError

CONFIG_FILE = "phrsync.toml"


class _Section(BaseModel):
    """A table of phrsync.toml: unknown keys and wrongly typed values are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)


class StagingSection(_Section):
    path: str | None = Field(None, description="ไฟล์ DuckDB ของที่พักข้อมูล / the staging DuckDB file "
                                               "(default <data_dir>/staging.duckdb)")


class ImportSection(_Section):
    """[import]: bounds that keep one hostile or broken export from exhausting memory or time, so the rest of a
    batch still loads."""

    max_line_bytes: int = Field(65536, ge=1024, description="บรรทัดที่ยาวกว่านี้ (ไบต์) ถูกข้ามและกักไว้ (บรรทัด 43 แฟ้ม"
                                                            "ยาวไม่กี่ร้อยไบต์) / a longer line (bytes) is skipped and "
                                                            "quarantined (a 43-file line is a few hundred bytes)")
    max_member_bytes: int = Field(2 ** 31, ge=1, description="แฟ้มใน zip ที่ขยายแล้วใหญ่กว่านี้ (ไบต์) ไม่ถูกอ่าน / a zip "
                                                            "member larger than this uncompressed (bytes) is refused")
    max_compression_ratio: float = Field(100.0, ge=0, description="แฟ้มใน zip (ตั้งแต่ 1 MiB) ที่บีบอัดมากกว่านี้ไม่ถูกอ่าน "
                                                                  "(zip bomb; 0 = ไม่ตรวจ) / a zip member (from 1 MiB) "
                                                                  "compressed more than this is refused (a zip bomb; "
                                                                  "0 = no check)")
    max_quarantine_per_file: int = Field(100_000, ge=1, description="รายการกักต่อแฟ้มสูงสุด; แฟ้มที่ผิดทุกแถวจนถึงจำนวนนี้"
                                                                    "หยุดอ่าน / quarantine entries kept per file; a file "
                                                                    "whose rows are all bad up to this many is no "
                                                                    "longer read")
    buddhist_dates: Literal["quarantine", "repair"] = Field(
        "quarantine", description="วันที่ที่ปีเป็น พ.ศ. (เช่น 25660515): quarantine = กักแถวไว้, repair = ลบ 543 ปีแล้วนำเข้า "
                                  "พร้อมคำเตือน / a date with a Buddhist-era year (e.g. 25660515): quarantine = the row "
                                  "is kept out, repair = 543 years are taken off and the row loads with a warning")


class TerminologySection(_Section):
    dir: str | None = Field(None, description="โฟลเดอร์ตารางรหัสของจังหวัด (แทนหรือเพิ่มตารางที่มากับโปรแกรม) / the "
                                              "province's own code tables (replace or extend the shipped ones)")
    store: str | None = Field(None, description="ฐานรหัสที่นำเข้า (TMT, บัญชียาของหน่วยบริการ, รหัสแล็บ) ไฟล์ SQLite / the "
                                                "store of imported codes (TMT releases, facility drug masters, lab "
                                                "codes), a SQLite file (data_dir/codes.sqlite)")


class PoliciesSection(_Section):
    """[policies]: what to do about data PHR wants that the 43 files lack (docs/mapping.md)."""

    visit_end: Literal["omit", "estimate", "last_update"] = Field(
        "omit", description="เวลาสิ้นสุดการรับบริการ / the visit's end time")
    visit_minutes_opd: int = Field(60, ge=1, le=1440, description="estimate: นาทีหลังเวลาเริ่ม (TYPEIN 1, 2, 5) / "
                                                                  "minutes after the start")
    visit_minutes_other: int = Field(120, ge=1, le=1440, description="estimate: TYPEIN 3 ส่งต่อ, 4 EMS / referral, EMS")
    missing_time: Literal["omit_time", "default_time"] = Field(
        "omit_time", description="วันที่ที่ไม่มีเวลา / a date with no time")
    default_time: str = Field("08:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                              description="สำหรับ missing_time = default_time (HH:MM) / for default_time")
    lab_time: Literal["visit_start", "date"] = Field("visit_start", description="เวลาของผลแล็บ / time of a lab result")
    card_dates: Literal["card", "omit"] = Field("card", description="วันที่ของบัตรสิทธิ / coverage card dates")
    missing_cid: Literal["skip"] = Field("skip", description="ไม่มีเลขบัตร: ข้าม (ทางเดียวที่ปลอดภัย) / no CID: skip")
    ipd_ref_prefix: str = Field("", description="Encounter ref ของ IPD = HCODE:<prefix>AN / admission ref prefix")
    unmapped_drug: Literal["local", "skip"] = Field(
        "local", description="ยาที่ไม่มีรหัส TMT: local = ส่งด้วยรหัส 24 หลัก/รหัสของหน่วยบริการ และชื่อยา, skip = ไม่ส่งรายการนั้น"
                             " / a drug with no TMT code: local = sent under the 24-digit/local code with its name; "
                             "skip = left out (a note either way)")
    implausible_vitals: Literal["drop", "send"] = Field(
        "drop", description="สัญญาณชีพที่เป็นไปไม่ได้ / implausible vital signs")


class FacilityAccount(_Section):
    """[delivery.facilities.<HCODE>]: a facility's own Account Center account (instead of the province's)."""

    user: str | None = Field(None, description="ชื่อผู้ใช้ Account Center / Account Center user "
                                               "(or PHRSYNC_PHR_USER_<HCODE>)")
    password_file: str | None = Field(None, description="ไฟล์รหัสผ่าน (chmod 600) / password file "
                                                        "(or PHRSYNC_PHR_PASSWORD_<HCODE>)")
    password_hash_file: str | None = Field(None, description="ไฟล์ password_hash / password_hash file "
                                                             "(or PHRSYNC_PHR_PASSWORD_HASH_<HCODE>)")
    facility_token_file: str | None = Field(None, description="ไฟล์ token 1 ปี HCODE:TOKEN / 1-year token file "
                                                              "(or PHRSYNC_PHR_FACILITY_TOKEN_<HCODE>)")


class DeliverySection(_Section):
    target: str | None = Field(None, description="ปลายทาง production | uat | sandbox | ชื่อใน [targets] / the "
                                                 "target (or PHRSYNC_TARGET; default sandbox)")
    input: str | None = Field(None, description="ไฟล์จาก phrsync build (นับจากโฟลเดอร์ของ phrsync.toml) / the build "
                                                "file (default <data_dir>/payloads.ndjson)")
    state_url: str | None = Field(None, description="ฐานข้อมูลสถานะ (PostgreSQL) / the state store URL "
                                                    "(or PHRSYNC_STATE_URL; a password belongs in the environment)")
    state_path: str | None = Field(None, description="ไฟล์ SQLite ของสถานะ / the state store SQLite file "
                                                     "(default <data_dir>/delivery/outbox.sqlite)")
    user: str | None = Field(None, description="บัญชีจังหวัด ใช้กับทุกหน่วยบริการที่ไม่มีบัญชีของตัวเอง / the province "
                                               "account (or PHRSYNC_PHR_USER)")
    password_file: str | None = Field(None, description="ไฟล์รหัสผ่าน (chmod 600) / password file "
                                                        "(or PHRSYNC_PHR_PASSWORD)")
    password_hash_file: str | None = Field(None, description="ไฟล์ password_hash / password_hash file "
                                                             "(or PHRSYNC_PHR_PASSWORD_HASH)")
    password_key_file: str | None = Field(None, description="ไฟล์คีย์ HMAC ของ password_hash / the password_hash "
                                                            "key file (or PHRSYNC_PHR_PASSWORD_KEY)")
    facility_token_file: str | None = Field(None, description="ไฟล์ token 1 ปี / 1-year facility token file "
                                                              "(or PHRSYNC_PHR_FACILITY_TOKEN)")
    facilities: dict[str, FacilityAccount] = Field(default_factory=dict,
                                                   description="บัญชีรายหน่วยบริการ / per-facility accounts")
    remove_max_fraction: float = Field(0.2, ge=0, le=1, description="ลบได้ไม่เกินสัดส่วนนี้ของวันโดยไม่ใส่ --force / "
                                                                    "reconcile's removal guard per day")
    full_check_days: float = Field(7.0, ge=0, description="ตรวจกับ PHR ทุกวันของ build ทุกกี่วัน / compare every "
                                                          "day of the build with PHR this often")
    computer_name: str | None = Field(None, description="ชื่อเครื่องที่แจ้ง PHR (ต่อท้ายด้วยรหัสติดตั้งของฐานข้อมูล"
                                                        "สถานะ) / computer name told to PHR (default the host name; "
                                                        "the state store's installation id is appended)")
    every_minutes: float = Field(60.0, gt=0, description="phrsync run: ส่งทุกกี่นาที / minutes between rounds")

    @field_validator("facilities")
    @classmethod
    def _hcodes(cls, v: dict[str, FacilityAccount]) -> dict[str, FacilityAccount]:
        bad = [h for h in v if not (len(h) == 5 and h.isdigit())]
        if bad:
            raise ValueError(f"รหัสหน่วยบริการต้องเป็นตัวเลข 5 หลัก / facility code must be 5 digits: {', '.join(bad)}")
        return v


class TargetSection(_Section):
    """[targets.<name>]: a PHR service (production, uat and sandbox are built in; a table changes them)."""

    @model_validator(mode="before")
    @classmethod
    def _no_insecure(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("verify" in data or "insecure" in data):
            raise ValueError("ปิดการตรวจใบรับรอง TLS ไม่ได้ ใช้ ca_bundle แทน / TLS verification cannot be disabled; "
                             "use ca_bundle")
        return data

    base_url: str | None = Field(None, description="ที่อยู่ของ PHR / the service's base URL")
    token_url: str | None = Field(None, description="ที่ขอ JWT / where the JWT is requested")
    ca_bundle: str | None = Field(None, description="ใบรับรอง CA เพิ่มเติม (เช่น UAT) — ปิดการตรวจ TLS ไม่ได้ / an extra "
                                                    "CA certificate (e.g. UAT); TLS verification cannot be disabled")
    timeout: float | None = Field(None, gt=0, description="วินาทีต่อคำขอ / seconds per request (120)")
    concurrency: int | None = Field(None, ge=1, description="คำขอพร้อมกันตอนเริ่ม และเมื่อไม่จำกัดอัตรา / requests "
                                                            "at once to start with, and unpaced (8)")
    max_concurrency: int | None = Field(None, ge=1, description="คำขอพร้อมกันสูงสุด ปรับตามอัตรา × เวลาตอบ / the "
                                                                "most requests at once, sized from rate × round "
                                                                "trip (256)")
    rate_per_minute: int | None = Field(None, ge=0, description="ส่งต่อหน่วยบริการต่อนาที / uploads per facility a "
                                                                "minute (110; 0 = no limit)")
    max_attempts: int | None = Field(None, ge=1, description="ครั้งต่อ payload ต่อรอบ / attempts per payload a run (8)")
    backoff_base: float | None = Field(None, ge=0, description="วินาทีรอครั้งแรก / first backoff in seconds (0.5)")
    backoff_max: float | None = Field(None, ge=0, description="วินาทีรอสูงสุด / longest backoff (60)")
    breaker_failures: int | None = Field(None, ge=1, description="ล้มเหลวติดกันก่อนพัก / failures that open the "
                                                                 "circuit (12)")
    breaker_cooldown: float | None = Field(None, ge=0, description="วินาทีที่พัก / circuit cool-down (30)")
    give_up_seconds: float | None = Field(None, gt=0, description="เลิกรอบเมื่อไม่สำเร็จเลยนานเท่านี้ / end the run "
                                                                  "after this long without a success (600)")
    status_interval: float | None = Field(None, ge=5, description="วินาทีระหว่าง UpdateAgentStatus / seconds "
                                                                  "between agent status reports (30)")


class ServerLimitsSection(_Section):
    """How long a phrsync web server waits for a client and how many connections it keeps open
    (:class:`phrsync.httpserver.HttpLimits`); a section for a web server inherits these keys."""

    header_timeout_seconds: float | None = Field(None, gt=0, description="รอส่วนหัวของคำขอได้นานเท่าไร เกินนี้ตอบ 408 "
                                                                         "และตัดการเชื่อมต่อ / seconds for a "
                                                                         "request's headers, then 408 (10)")
    body_timeout_seconds: float | None = Field(None, gt=0, description="รอเนื้อหาของคำขอทั้งหมดได้นานเท่าไร / seconds "
                                                                       "for a request's whole body, then 408 (60)")
    max_connections: int | None = Field(None, ge=1, description="การเชื่อมต่อที่เปิดพร้อมกันได้ เกินนี้ตอบ 503 / open "
                                                                "connections; the next gets 503 (1000)")


class SandboxSection(ServerLimitsSection):
    data_dir: str | None = Field(None, description="โฟลเดอร์ข้อมูลของเซิร์ฟเวอร์ทดสอบ / the sandbox's folder "
                                                   "(default <data_dir>/sandbox)")
    db_url: str | None = Field(None, description="ฐานข้อมูลของเซิร์ฟเวอร์ทดสอบ / the sandbox database "
                                                 "(or PHRSYNC_SANDBOX_DB; default SQLite in data_dir)")
    jwt_secret: str | None = Field(None, description="คีย์ลงนาม JWT (ควรใช้ env) / JWT signing secret "
                                                     "(better PHRSYNC_SANDBOX_SECRET; default generated once)")
    password_key: str | None = Field(None, description="คีย์ HMAC ของ password_hash (ควรใช้ env) / password_hash "
                                                       "key (better PHRSYNC_SANDBOX_PASSWORD_KEY)")
    jwt_ttl_seconds: int | None = Field(None, ge=1, description="อายุ JWT / JWT lifetime (28800)")
    expired_status: Literal[401, 501] | None = Field(None, description="รหัสตอบ JWT หมดอายุ / status for an "
                                                                       "expired JWT (401; 501 as production)")
    rate_limit_per_minute: int | None = Field(None, ge=0, description="ต่อหน่วยบริการต่อนาที / uploads per facility "
                                                                      "a minute (120; 0 = no limit)")
    agent_status_interval: float | None = Field(None, ge=0, description="UpdateAgentStatus ถี่สุด (วินาที) / "
                                                                        "shortest gap (5)")
    max_body_bytes: int | None = Field(None, ge=1024, description="ขนาดคำขอสูงสุด / largest body (20 MiB)")
    large_body_bytes: int | None = Field(None, ge=1024, description="คำขอที่ใหญ่กว่านี้นับเป็นคำขอใหญ่ / a body "
                                                                   "above this counts as large (1 MiB)")
    max_large_bodies: int | None = Field(None, ge=0, description="คำขอใหญ่ที่รับพร้อมกันได้ เกินนี้ตอบ 503 ให้ส่งใหม่ / "
                                                                 "large bodies read at once; the next gets 503 "
                                                                 "and Retry-After (4; 0 = no bound)")
    lockout_failures: int | None = Field(None, ge=1, description="รหัสผิดกี่ครั้งจึงล็อก / failed logins before "
                                                                 "lockout (5)")
    lockout_seconds: int | None = Field(None, ge=0, description="ล็อกนานเท่าไร / lockout seconds (900)")
    facility_token_days: int | None = Field(None, ge=1, description="อายุ token ของหน่วยบริการ / facility token "
                                                                    "days (365)")
    commit_batch_max: int | None = Field(None, ge=1, description="เขียนรวมต่อธุรกรรม / writes per transaction (256)")
    commit_delay_ms: float | None = Field(None, ge=0, description="รอรวมการเขียน / group-commit wait (1.0 ms)")
    sqlite_synchronous: Literal["FULL", "NORMAL", "OFF", "EXTRA"] | None = Field(
        None, description="FULL = ที่ตอบรับแล้วไม่หายแม้ไฟดับ / acknowledged writes survive power loss (FULL)")
    ekyc_rate_limit_per_minute: int | None = Field(None, ge=0, description="check_ekyc ต่อบัญชีต่อนาที / check_ekyc "
                                                                           "calls per account a minute (6000; 0 = "
                                                                           "no limit)")
    did_shares: dict[str, float] | None = Field(None, description='สัดส่วนประชาชนที่มี Digital ID ต่ออำเภอ (รหัส DOPA 4 หลัก '
                                                                  'ตามทะเบียน IdP ที่ seed ไว้ หรือหน่วยบริการที่ส่งข้อมูล '
                                                                  'หรือเลขบัตรหลักที่ 2–5) "2705" = 0.1304 / citizens\' '
                                                                  'share with a Digital ID per district (DOPA code: '
                                                                  'the seeded IdP register\'s, else the sending '
                                                                  'facility\'s, else digits 2-5 of the CID; default: '
                                                                  'Sa Kaeo\'s report)')
    did_default_share: float | None = Field(None, ge=0, le=1, description="สัดส่วนของอำเภอที่ไม่ได้ระบุ / share for a "
                                                                          "district not listed (0.0501)")
    did_personnel_share: float | None = Field(None, ge=0, le=1, description="สัดส่วนบุคลากรในทะเบียน IdP ที่มี Digital "
                                                                            "ID / share of the register's health "
                                                                            "personnel with one (0.8772)")
    did_seed: int | None = Field(None, description="ค่าเริ่มของคำตอบ check_ekyc / seed of the check_ekyc answers (0)")


class WebSection(ServerLimitsSection):
    """``phrsync web``: the province's monitoring site (reads the staging store, the state store and the build)."""

    host: str | None = Field(None, description="ที่อยู่ที่เปิดรับ / address to listen on (127.0.0.1)")
    port: int | None = Field(None, ge=1, le=65535, description="พอร์ต / port (8080)")
    build_file: str | None = Field(None, description="ไฟล์ผลการสร้าง payload ที่แสดง / the build file shown "
                                                     "(default <data_dir>/payloads.ndjson)")
    sandbox_data_dir: str | None = Field(None, description="อ่านมุมมองศูนย์ PHR จากเซิร์ฟเวอร์ทดสอบนี้ / read the PHR "
                                                           "centre view from this sandbox folder (testing only)")
    silent_days: int | None = Field(None, ge=1, description="ไม่ได้ส่งนานกี่วันจึงนับว่าเงียบ / days without a "
                                                            "delivery before a facility counts as silent (7)")
    session_hours: float | None = Field(None, gt=0, description="อายุการเข้าระบบ / hours a login lasts (12)")
    secure_cookies: bool | None = Field(None, description="คุกกี้เฉพาะ HTTPS (เปิดเมื่ออยู่หลัง HTTPS) / cookies only "
                                                          "over HTTPS (true behind HTTPS; default false)")
    login_attempts: int | None = Field(None, ge=1, description="เข้าระบบผิดกี่ครั้งต่อ 15 นาทีจึงล็อก / failed logins "
                                                               "per 15 minutes before a lockout (5)")
    language: Literal["th", "en"] | None = Field(None, description="ภาษาเริ่มต้น / default language (th)")


DEFAULT_PERSONNEL_EXCLUDE = ["รายคาบ", "รายวัน", "จ้างเหมา", "เหมาบริการ", "per-period", "per period", "daily",
                             "contracted", "contract service", "outsourced"]


class DidSection(_Section):
    """[did]: checking who has a Digital ID (หมอพร้อม eKYC, ``idp/api/check_ekyc``) and KPI 54's targets."""

    target: str | None = Field(None, description="ปลายทางที่ตรวจ production | uat | sandbox | ชื่อใน [targets] / the "
                                                 "target checked (default: [delivery] target)")
    account_hospcode: str | None = Field(None, pattern=r"^\d{5}$",
                                         description="รหัสหน่วยบริการของบัญชีที่มีสิทธิ์ MOPH_IDP_API (เช่น สสจ.) / the "
                                                     "facility code the MOPH_IDP_API account logs in for (e.g. the "
                                                     "provincial office; default: the only account configured)")
    concurrency: int = Field(8, ge=1, le=256, description="คำขอพร้อมกัน / requests at once")
    rate_per_minute: int = Field(600, ge=0, description="คำขอต่อนาที (0 = ไม่จำกัด; PHR ไม่ได้ระบุเพดาน) / requests a "
                                                        "minute (0 = no limit; PHR documents none)")
    max_attempts: int = Field(6, ge=1, description="ครั้งต่อคนต่อรอบ เมื่อ 429/5xx/เครือข่าย / attempts per person a "
                                                   "run on 429, 5xx or network errors")
    timeout: float = Field(30.0, gt=0, description="วินาทีต่อคำขอ / seconds per request")
    recheck_days: float = Field(30.0, ge=0, description="ตรวจคนที่ยังไม่มี Digital ID ซ้ำเมื่อผ่านไปกี่วัน (คนที่มีแล้วไม่ตรวจ"
                                                        "ซ้ำ) / days before someone without a Digital ID is checked "
                                                        "again (those with one never are)")
    target_6m_personnel: float = Field(25.0, ge=0, le=100, description="เป้า 6 เดือน บุคลากร (%) / 6-month target, "
                                                                       "personnel (KPI 54.1)")
    target_6m_citizens: float = Field(10.0, ge=0, le=100, description="เป้า 6 เดือน ประชาชน (%) / 6-month target, "
                                                                      "citizens (KPI 54.2)")
    target_12m_personnel: float = Field(50.0, ge=0, le=100, description="เป้า 12 เดือน บุคลากร (%) / 12-month target, "
                                                                        "personnel")
    target_12m_citizens: float = Field(25.0, ge=0, le=100, description="เป้า 12 เดือน ประชาชน (%) / 12-month target, "
                                                                       "citizens")
    personnel_exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_PERSONNEL_EXCLUDE),
                                         description="ประเภทการจ้างที่ไม่นับเป็นบุคลากร (มีคำเหล่านี้) / employment types "
                                                     "not counted as personnel (containing any of these)")


class Settings(_Section):
    """The whole of phrsync.toml."""

    model_config = ConfigDict(extra="forbid", strict=True, serialize_by_alias=True)

    data_dir: str = Field("data", description="โฟลเดอร์ข้อมูลทั้งหมด (นับจากโฟลเดอร์ของ phrsync.toml) / where "
                                              "everything is kept (or PHRSYNC_DATA)")
    staging: StagingSection = Field(default_factory=StagingSection)
    # ``import`` is a Python keyword: the attribute is ``import_``, the table in the file ``[import]``
    import_: ImportSection = Field(default_factory=ImportSection, alias="import")
    terminology: TerminologySection = Field(default_factory=TerminologySection)
    facilities: dict[str, str] = Field(default_factory=dict, description='ชื่อหน่วยบริการแทนตารางรหัส "10699" = '
                                                                         '"..." / facility names over the code table')
    policies: PoliciesSection = Field(default_factory=PoliciesSection)
    delivery: DeliverySection = Field(default_factory=DeliverySection)
    targets: dict[str, TargetSection] = Field(default_factory=dict)
    sandbox: SandboxSection = Field(default_factory=SandboxSection)
    web: WebSection = Field(default_factory=WebSection)
    did: DidSection = Field(default_factory=DidSection)


class Environment(BaseSettings):
    """The environment variables phrsync reads (``PHRSYNC_*``). Secrets are ``SecretStr``: never printed.

    Per-facility credentials add ``_<HCODE>`` to a PHRSYNC_PHR_* name (``PHRSYNC_PHR_PASSWORD_10699``)."""

    model_config = SettingsConfigDict(env_prefix="PHRSYNC_", extra="ignore", case_sensitive=True)

    CONFIG: str | None = Field(None, description="ไฟล์ตั้งค่า / the configuration file (like --config)")
    DATA: str | None = Field(None, description="data_dir เมื่อไม่ได้ตั้งในไฟล์ / data_dir when the file has none")
    STAGING_MEMORY: str | None = Field(None, description="เพดานหน่วยความจำ DuckDB ของการนำเข้า / DuckDB memory "
                                                         "limit of an import (256MB)")
    CODES_DIR: str | None = Field(None, description="แทน [terminology] dir / overrides [terminology] dir")
    HDC_URL: SecretStr | None = Field(None, description="ฐาน HDC (MySQL/MariaDB) สำหรับ import --hdc / the HDC "
                                                        "database URL, with its password")
    TARGET: str | None = Field(None, description="แทน [delivery] target / overrides [delivery] target")
    STATE_URL: SecretStr | None = Field(None, description="แทน [delivery] state_url / the state store URL")
    PHR_USER: str | None = Field(None, description="บัญชีจังหวัด / the province account ([delivery] user)")
    PHR_PASSWORD: SecretStr | None = Field(None, description="รหัสผ่านของบัญชี / its password")
    PHR_PASSWORD_HASH: SecretStr | None = Field(None, description="หรือ password_hash ที่คำนวณแล้ว / or its "
                                                                  "password_hash")
    PHR_PASSWORD_KEY: SecretStr | None = Field(None, description="คีย์ HMAC ของ password_hash / the password_hash "
                                                                 "key")
    PHR_FACILITY_TOKEN: SecretStr | None = Field(None, description="token 1 ปี HCODE:TOKEN / the 1-year token")
    SANDBOX_DB: SecretStr | None = Field(None, description="แทน [sandbox] db_url / the sandbox database URL")
    SANDBOX_SECRET: SecretStr | None = Field(None, description="แทน [sandbox] jwt_secret / the sandbox JWT secret")
    SANDBOX_PASSWORD_KEY: SecretStr | None = Field(None, description="แทน [sandbox] password_key / the sandbox "
                                                                     "password_hash key")
    PURE_PYTHON: str | None = Field(None, description="1 = ใช้ต้นฉบับ Python แทนโมดูลที่คอมไพล์ / run the plain-"
                                                      "Python sources instead of the compiled modules")
    COMPILE: str | None = Field(None, description="0 ตอนติดตั้ง = ไม่คอมไพล์ด้วย mypyc / 0 at install: no mypyc")


SECRET_KEYS = frozenset({"sandbox.jwt_secret", "sandbox.password_key"})


# ---------------------------------------------------------------------------------------------------------------
# errors: pydantic's report → a message naming the file, section and key, in Thai and English

_TYPES = {
    "string_type": ("ต้องเป็นข้อความ", "must be text (in quotes)"),
    "int_type": ("ต้องเป็นจำนวนเต็ม", "must be a whole number"),
    "float_type": ("ต้องเป็นตัวเลข", "must be a number"),
    "bool_type": ("ต้องเป็น true หรือ false", "must be true or false"),
    "dict_type": ("ต้องเป็นตาราง TOML", "must be a TOML table"),
    "model_type": ("ต้องเป็นตาราง TOML", "must be a TOML table"),
    "model_attributes_type": ("ต้องเป็นตาราง TOML", "must be a TOML table"),
    "literal_error": ("ค่าไม่อยู่ในชุดที่ใช้ได้", "is not one of the allowed values"),
    "greater_than": ("ต้องมากกว่า", "must be greater than"),
    "greater_than_equal": ("ต้องไม่น้อยกว่า", "must be at least"),
    "less_than_equal": ("ต้องไม่เกิน", "must be at most"),
    "string_pattern_mismatch": ("รูปแบบไม่ถูกต้อง", "has the wrong form"),
}


def _where(loc: tuple[Any, ...], whole_table: bool = False) -> tuple[str, str]:
    """(section, key) of a pydantic location: ('delivery', 'facilities', '10699', 'user') → ('[delivery.facilities.
    10699]', 'user'); a location that is a table itself is all section."""
    parts = [str(p) for p in loc]
    if whole_table:
        return "[" + ".".join(parts) + "]", ""
    if len(parts) == 1:
        return "", parts[0]
    return "[" + ".".join(parts[:-1]) + "]", parts[-1]


def _model_of(ann: Any) -> tuple[type[BaseModel] | None, bool]:
    """The section model behind an annotation, and whether a dict key (a facility, a target name) comes first."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann, False
    if get_origin(ann) is dict:
        inner, _ = _model_of(get_args(ann)[1])
        return inner, True
    for a in get_args(ann):
        m, keyed = _model_of(a)
        if m is not None:
            return m, keyed
    return None, False


def _known(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at ``loc`` (without its last part) accepts, for a did-you-mean."""
    m: type[BaseModel] | None = model
    skip = False
    for p in loc[:-1]:
        if skip:
            skip = False
            continue
        f = _fields(m).get(str(p)) if m is not None else None
        if f is None:
            return []
        m, skip = _model_of(f.annotation)
    return list(_fields(m)) if m is not None and not skip else []


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the name the file uses (``import`` for ``import_``)."""
    return {f.alias or name: f for name, f in model.model_fields.items()}


def describe(e: ValidationError, source: str, model: type[BaseModel] = Settings) -> str:
    lines = []
    for err in e.errors():
        loc = tuple(err["loc"])
        got = err.get("input")
        table = err["type"] in ("dict_type", "model_type", "model_attributes_type") or (
            err["type"] == "value_error" and isinstance(got, dict))
        section, key = _where(loc, whole_table=table)
        at = f"{section} {key}".strip()
        if err["type"] == "extra_forbidden":
            near = difflib.get_close_matches(key, _known(model, loc), n=1)
            hint = f" (หมายถึง / did you mean {near[0]}?)" if near else ""
            what = "ไม่รู้จักหัวข้อ / unknown section" if isinstance(got, dict) else "ไม่รู้จักค่านี้ / unknown setting"
            lines.append(f"{source}: {at}: {what}{hint}")
            continue
        th, en = _TYPES.get(err["type"], ("ค่าไม่ถูกต้อง", err["msg"]))
        ctx = err.get("ctx") or {}
        extra = next((str(ctx[k]) for k in ("gt", "ge", "le", "expected", "pattern") if k in ctx), "")
        if err["type"] == "value_error":
            lines.append(f"{source}: {at}: {str(ctx.get('error', err['msg']))}")
            continue
        shown = "***" if ".".join(map(str, loc)) in SECRET_KEYS else repr(got)
        lines.append(f"{source}: {at}: {th} {extra} / {en} {extra}".replace("  ", " ").rstrip() + f" ({shown})")
    return "ค่าตั้งไม่ถูกต้อง / invalid settings:\n  " + "\n  ".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# loading


def find_config_file(path: str | os.PathLike[str] | None, env: Environment) -> Path | None:
    """``--config`` (must exist), else ``$PHRSYNC_CONFIG`` (must exist), else ``./phrsync.toml`` if present."""
    for given, name in ((path, "--config"), (env.CONFIG, "PHRSYNC_CONFIG")):
        if given:
            p = Path(given)
            if not p.is_file():
                raise ConfigError(f"ไม่พบไฟล์ตั้งค่า {p} ({name})", f"configuration file not found: {p} ({name})")
            return p
    p = Path(CONFIG_FILE)
    return p if p.is_file() else None


def read_toml(p: Path) -> dict[str, Any]:
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"ไฟล์ตั้งค่าผิดรูปแบบ TOML {p}: {e}", f"invalid TOML in {p}: {e}") from None
    except OSError as e:
        raise ConfigError(f"อ่านไฟล์ตั้งค่าไม่ได้ {p}: {e.strerror}", f"cannot read configuration file {p}: "
                                                                    f"{e.strerror}") from None


def parse(raw: dict[str, Any], source: str) -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(describe(e, source)) from None


def environment(env: dict[str, str] | None = None) -> Environment:
    """The PHRSYNC_* variables (of ``env`` when given, else of this process)."""
    if env is None:
        return Environment()
    return Environment.model_validate({k.removeprefix("PHRSYNC_"): v for k, v in env.items()
                                       if k.startswith("PHRSYNC_") and k.removeprefix("PHRSYNC_")
                                       in Environment.model_fields})


# ---------------------------------------------------------------------------------------------------------------
# documentation and provenance


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, Any, str]]:
    out = []
    for name, f in _fields(model).items():
        ann = f.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is not None:
            out.extend(_rows(sub, f"{prefix}{name}."))
            continue
        args = getattr(ann, "__args__", ())
        val_model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if val_model is not None and "dict" in str(ann):
            placeholder = "<HCODE>" if name == "facilities" else "<name>"
            out.extend(_rows(val_model, f"{prefix}{name}.{placeholder}."))
            continue
        default = f.get_default(call_default_factory=True)
        out.append((f"{prefix}{name}", _type_name(ann), default, f.description or ""))
    return out


def _type_name(ann: Any) -> str:
    """``Literal['a', 'b'] | None`` → ``"a" or "b"``; ``int | None`` → ``int``: as a reader of the table needs it."""
    args = [a for a in get_args(ann) if a is not type(None)] if get_origin(ann) is not Literal else [ann]
    if get_origin(ann) not in (Literal, dict) and len(args) == 1:
        ann = args[0]
    if get_origin(ann) is Literal:
        return " or ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in get_args(ann))
    return str(ann).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """docs/settings.md: every setting and variable, its type, default and meaning."""
    lines = ["# ค่าตั้งทั้งหมด / Every setting", "",
             "สร้างจาก `phrsync/settings.py` (`python -m phrsync.settings > docs/settings.md`); การทดสอบตรวจว่าตรงกัน",
             "/ generated from phrsync/settings.py; a test checks that it matches.", "",
             "ไฟล์ `phrsync.toml` (`--config`, `$PHRSYNC_CONFIG` หรือ `./phrsync.toml`): ชื่อที่สะกดผิด หัวข้อที่ไม่รู้จัก "
             "หรือชนิดค่าผิด เป็นข้อผิดพลาด (exit 2) ที่บอกไฟล์ หัวข้อ และชื่อค่า; ทางที่ไม่ใช่แบบเต็ม นับจากโฟลเดอร์ของไฟล์ "
             "/ a misspelled key, an unknown section or a wrongly typed value is an error (exit 2) naming the file, "
             "section and key; relative paths are taken from the file's folder. `phrsync config` prints the effective "
             "values (secrets masked) and where each came from.", "",
             "## phrsync.toml", "", "| ค่า / setting | ชนิด / type | ค่าตั้งต้น / default | ความหมาย / meaning |",
             "|---|---|---|---|"]
    for key, typ, default, desc in _rows(Settings, ""):
        shown = "" if default is None else f"`{default!r}`" if not isinstance(default, str) else f'`"{default}"`'
        section, _, name = key.rpartition(".")
        label = f"[{section}] {name}" if section else name
        lines.append(f"| `{label}` | {_cell(typ)} | {_cell(shown)} | {_cell(desc)} |")
    lines += ["", "## ตัวแปรสภาพแวดล้อม / Environment variables", "",
              "ความลับ (รหัสผ่าน คีย์ token) มาจากตัวแปรเหล่านี้หรือไฟล์ที่อ่านได้เฉพาะเจ้าของเท่านั้น ไม่รับในบรรทัดคำสั่ง / secrets "
              "come only from these or from files readable by their owner, never from the command line.", "",
              "| ตัวแปร / variable | ความลับ / secret | ความหมาย / meaning |", "|---|---|---|"]
    for name, f in Environment.model_fields.items():
        secret = "ใช่ / yes" if "SecretStr" in str(f.annotation) else ""
        lines.append(f"| `PHRSYNC_{name}` | {secret} | {_cell(f.description or '')} |")
    lines += ["| `PHRSYNC_PHR_USER_<HCODE>`, `PHRSYNC_PHR_PASSWORD_<HCODE>`, `PHRSYNC_PHR_PASSWORD_HASH_<HCODE>`, "
              "`PHRSYNC_PHR_FACILITY_TOKEN_<HCODE>` | ใช่ / yes | บัญชีของหน่วยบริการ (คู่กับ [delivery.facilities.<HCODE>]) / a "
              "facility's own account |", ""]
    return "\n".join(lines)


def flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
