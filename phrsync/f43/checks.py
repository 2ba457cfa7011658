"""Row checks, run column-wise inside DuckDB so a million rows cost seconds, not minutes.

Each field gets one SQL expression that yields the first rule it breaks (or NULL). A row with any
*error* stays out of staging and goes to quarantine with its reasons; a *warning* is recorded and
the row still loads. The rule catalogue below is the one place that names every rule, in Thai and
English, so reports, the quarantine table and the docs all say the same thing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from phrsync.f43.schema import CODESETS, ICD10, Field, FileSpec


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    th: str
    en: str


RULES: dict[str, Rule] = {
    r.code: r
    for r in [
        Rule("required", "error", "ช่องที่ต้องมีค่าว่างอยู่", "required field is empty"),
        Rule("too_long", "error", "ค่ายาวเกินกำหนดของช่อง", "value longer than the field allows"),
        Rule("bad_format", "error", "รูปแบบค่าไม่ถูกต้อง", "value does not have the required form"),
        Rule("unknown_code", "error", "รหัสไม่อยู่ในชุดรหัสมาตรฐานของช่องนี้", "code not in the field's standard code set"),
        Rule("cid_checksum", "error", "เลขประจำตัวประชาชนไม่ถูกต้อง (ผลรวมตรวจสอบผิด)", "citizen ID fails its check digit"),
        Rule("bad_date", "error", "วันที่ไม่มีอยู่จริงหรือรูปแบบผิด (ต้องเป็น YYYYMMDD ค.ศ.)",
             "date does not exist or is malformed (expected YYYYMMDD, Christian era)"),
        Rule("be_year", "error", "ปีเป็น พ.ศ. (ต้องเป็น ค.ศ.)", "year is Buddhist era (expected Christian era)"),
        Rule("bad_datetime", "error", "วันเวลาไม่มีอยู่จริงหรือรูปแบบผิด (ต้องเป็น YYYYMMDDHHMMSS)",
             "date-time does not exist or is malformed (expected YYYYMMDDHHMMSS)"),
        Rule("future_date", "error", "วันที่อยู่ในอนาคต", "date is in the future"),
        Rule("bad_number", "error", "ไม่ใช่ตัวเลข", "not a number"),
        Rule("duplicate_key", "error", "คีย์ซ้ำกับอีกแถวในแฟ้มเดียวกัน เก็บแถวที่ D_UPDATE ล่าสุด (เท่ากัน: แถวหลัง)",
             "same key as another row of the same file: the row with the latest D_UPDATE (equal: the later line) "
             "is kept"),
        Rule("truncated_line", "error", "บรรทัดขาด มีจำนวนช่องน้อยกว่าที่กำหนด", "line cut short: too few fields"),
        Rule("field_count", "error", "จำนวนช่องเกินที่กำหนด", "too many fields"),
        Rule("encoding", "error", "ถอดรหัสอักขระไม่ได้", "undecodable bytes"),
        Rule("truncated_file", "error", "ไฟล์ขาดหรือเสียหาย", "file cut or damaged"),
        Rule("bad_zip", "error", "เปิดไฟล์ zip ไม่ได้", "cannot open zip file"),
        Rule("unreadable", "error", "อ่านไฟล์ไม่ได้", "cannot read file"),
        Rule("line_too_long", "error", "บรรทัดยาวเกินเพดาน ([import] max_line_bytes) ข้ามไป",
             "line over the length limit ([import] max_line_bytes): skipped"),
        Rule("empty_zip", "error", "zip ว่างหรือไม่มีแฟ้มของ 43 แฟ้ม", "zip is empty or holds no 43-file"),
        Rule("member_too_large", "error", "แฟ้มใน zip ใหญ่เกินเพดาน ([import] max_member_bytes) ไม่ได้อ่าน",
             "zip member over the size limit ([import] max_member_bytes): not read"),
        Rule("zip_ratio", "error", "แฟ้มใน zip ถูกบีบอัดเกินเพดาน ([import] max_compression_ratio) ไม่ได้อ่าน",
             "zip member compressed beyond the ratio limit ([import] max_compression_ratio): not read"),
        Rule("garbage_file", "error", "ทุกแถวของแฟ้มผิด หยุดอ่าน", "every row of the file is bad: reading stopped"),
        Rule("file_failed", "error", "นำเข้าแฟ้มไม่สำเร็จ ไม่มีแถวใดเข้าที่พักข้อมูล",
             "the file failed to import: none of its rows loaded"),
        Rule("quarantine_capped", "warning", "แถวที่เกินเพดานรายการกักต่อแฟ้มนับไว้แต่ไม่ได้บันทึก",
             "rows past the per-file quarantine cap are counted, not listed"),
        Rule("hdc_table_missing", "warning", "ไม่มีตารางนี้ในฐานข้อมูล HDC", "table missing in the HDC database"),
        Rule("hdc_column_missing", "warning", "ตาราง HDC ไม่มีคอลัมน์นี้ อ่านเป็นค่าว่าง",
             "column missing in the HDC table; read as empty"),
        Rule("encoding_tis620", "warning", "ไฟล์ใช้รหัส TIS-620 ไม่ใช่ UTF-8", "file is TIS-620, not UTF-8"),
        Rule("header_missing_field", "warning", "แถวหัวตารางไม่มีคอลัมน์ที่ต้องมี", "header lacks a required column"),
        Rule("missing_time", "warning", "ไม่มีเวลารับบริการ (TIME_SERV)", "visit time (TIME_SERV) missing"),
        Rule("cid_missing", "warning", "ไม่มีเลขประจำตัวประชาชน ส่งเข้า PHR ไม่ได้",
             "no citizen ID: cannot be sent to PHR"),
        Rule("icd10_normalised", "warning", "รหัส ICD-10 เขียนมีจุดหรือตัวพิมพ์เล็ก ปรับเป็นรูปมาตรฐานแล้ว (เช่น E11.9 → E119)",
             "ICD-10 code written with a dot or in lower case: normalised (e.g. E11.9 → E119)"),
        Rule("too_long_emptied", "warning", "ค่ายาวเกินกำหนดของช่อง ช่องนี้ไม่ได้ส่งเข้า PHR จึงเว้นว่างและนำเข้าแถวนี้",
             "value longer than the field allows; PHR never receives this field, so it is emptied and the row loads"),
        Rule("be_year_repaired", "warning", "ปีเป็น พ.ศ. แก้เป็น ค.ศ. แล้ว (ลบ 543 ปี, [import] buddhist_dates = repair)",
             "Buddhist-era year repaired to Christian era (543 years off, [import] buddhist_dates = repair)"),
        Rule("code_not_in_table", "warning", "รหัสไม่อยู่ในตารางรหัสของ phrsync (ตรวจสอบหรือเพิ่มตาราง)",
             "code not in phrsync's code table (check it or extend the table)"),
    ]
}

# Fields checked against phrsync.terminology tables (open lists: a miss is a warning).
TERMINOLOGY_FIELDS: dict[str, str] = {
    "PRENAME": "prename",
    "NATION": "nation",
    "RACE": "nation",
    "INSTYPE": "instype",
    "INSTYPE_NEW": "instype",
    "VACCINETYPE": "vaccines",
    "LABTEST": "lab_loinc",
}

# Fields phrsync never sends to PHR whose overlong value would otherwise cost the whole row (a PERSON row, and
# with it every visit of the person): emptied, with a warning. Truncating would leave a wrong passport number.
EMPTY_IF_TOO_LONG = frozenset({"PASSPORT"})
BE_DATE = "2[4-9][0-9]{2}-?[0-9]{2}-?[0-9]{2}"  # a year 2400-2999: Buddhist era (2568 = 2025)
BE_DATETIME = "2[4-9][0-9]{2}[-0-9 T:]{4,15}"

DATE_FORMATS = ["%Y%m%d", "%Y-%m-%d"]
DATETIME_FORMATS = ["%Y%m%d%H%M%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M", "%Y%m%d"]


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _fmt_list(fmts: list[str]) -> str:
    return "[" + ", ".join(lit(f) for f in fmts) + "]"


def parse_expr(f: Field) -> str:
    """SQL parsing the (trimmed, NULL-if-empty) text column, computed once per row as ``<F>__v``
    (integers as DOUBLE first, so ``120.0`` is accepted and ``12.5`` caught)."""
    c = q(f.name)
    if f.kind == "D":
        return f"CAST(try_strptime({c}, {_fmt_list(DATE_FORMATS)}) AS DATE)"
    if f.kind == "DT":
        return f"try_strptime({c}, {_fmt_list(DATETIME_FORMATS)})"
    if f.kind in ("N", "I"):
        return f"TRY_CAST({c} AS DOUBLE)"
    return c


def parsed(f: Field) -> str:
    return q(f.name + "__v") if f.kind in ("D", "DT", "N", "I") else q(f.name)


def typed_expr(f: Field) -> str:
    """The staging value, from the parsed column."""
    return f"CAST({parsed(f)} AS BIGINT)" if f.kind == "I" else parsed(f)


def _cid_ok(c: str) -> str:
    """The check-digit test on a CID already known to be 13 ASCII digits (the field's ``bad_format``
    rule comes first in its CASE). The digits are taken from the number with integer arithmetic:
    13 ``substr`` calls per row, each a UTF-8 scan, cost ~0.7 us per row on every 43-file with a CID."""
    n = f"CAST({c} AS BIGINT)"
    terms = " + ".join(f"(({n} // {10 ** (13 - i)}) % 10) * {14 - i}" for i in range(1, 13))
    return f"((11 - (({terms}) % 11)) % 10) = ({n} % 10)"


def error_expr(f: Field, today: dt.date) -> str | None:
    """SQL yielding ``'FIELD:rule'`` for the first error of this field in a row, else NULL."""
    c = q(f.name)
    whens: list[tuple[str, str]] = []
    if f.required:
        whens.append((f"{c} IS NULL", "required"))
    if f.kind in ("C", "T"):
        if f.length:
            whens.append((f"length({c}) > {f.length}", "too_long"))
        if f.pattern:
            whens.append((f"NOT regexp_full_match({c}, {lit(f.pattern)})", "bad_format"))
        if f.codes:
            codes = ", ".join(lit(x) for x in sorted(CODESETS[f.codes]))
            whens.append((f"{c} NOT IN ({codes})", "unknown_code"))
        if f.name == "CID":
            whens.append((f"NOT ({_cid_ok(c)})", "cid_checksum"))
    elif f.kind == "D":
        p = parsed(f)
        whens.append((f"regexp_full_match({c}, '{BE_DATE}')", "be_year"))
        whens.append((f"{p} IS NULL OR {p} < DATE '1900-01-01'", "bad_date"))
        if not f.future_ok:
            whens.append((f"{p} > DATE '{today.isoformat()}'", "future_date"))
    elif f.kind == "DT":
        p = parsed(f)
        whens.append((f"regexp_full_match({c}, '{BE_DATETIME}')", "be_year"))
        whens.append((f"{p} IS NULL OR {p} < TIMESTAMP '1900-01-01'", "bad_datetime"))
        if not f.future_ok:
            # a D_UPDATE stamped later today is fine; anything past tomorrow is not
            whens.append((f"CAST({p} AS DATE) > DATE '{(today + dt.timedelta(days=1)).isoformat()}'", "future_date"))
    elif f.kind in ("N", "I"):
        p = parsed(f)
        whens.append((f"{p} IS NULL", "bad_number"))
        if f.kind == "I":
            whens.append((f"{p} <> floor({p}) OR abs({p}) > 9e15", "bad_number"))
    if not whens:
        return None
    # NULL values only break "required"; every other rule applies to a present value
    parts = []
    for cond, rule in whens:
        guard = cond if rule == "required" else f"{c} IS NOT NULL AND ({cond})"
        parts.append(f"WHEN {guard} THEN {lit(f.name + ':' + rule)}")
    return "CASE " + " ".join(parts) + " END"


def warning_exprs(spec: FileSpec, code_sets: dict[str, frozenset[str]]) -> list[str]:
    out: list[str] = []
    if spec.name == "SERVICE":
        out.append(f"CASE WHEN {q('TIME_SERV')} IS NULL THEN 'TIME_SERV:missing_time' END")
    if spec.name == "PERSON":
        out.append(f"CASE WHEN {q('CID')} IS NULL THEN 'CID:cid_missing' END")
    for f in spec.fields:
        table = TERMINOLOGY_FIELDS.get(f.name)
        if not table or f.name == "PRENAME" and spec.name == "PROVIDER":
            continue
        codes = code_sets.get(table)
        if not codes:
            continue
        lst = ", ".join(lit(x) for x in sorted(codes))
        out.append(f"CASE WHEN {q(f.name)} IS NOT NULL AND {q(f.name)} NOT IN ({lst}) "
                   f"THEN {lit(f.name + ':code_not_in_table')} END")
    return out


def repairs(spec: FileSpec, buddhist_dates: str = "quarantine") -> list[tuple[Field, str, str]]:
    """(field, SQL of the repaired value, warning rule) for values that are fixed rather than quarantined: ICD-10
    codes with a dot or in lower case, an overlong field PHR never receives, and (``[import] buddhist_dates =
    "repair"``) Buddhist-era dates. The SQL reads the cleaned text column; a value it leaves as it was gets no
    warning."""
    out: list[tuple[Field, str, str]] = []
    for f in spec.fields:
        c = q(f.name)
        if f.pattern == ICD10:
            norm = f"upper(replace({c}, '.', ''))"
            # (a clean code, nearly every one, costs two string tests, not a regex)
            out.append((f, f"CASE WHEN (contains({c}, '.') OR {c} <> upper({c})) AND regexp_full_match({norm}, "
                           f"{lit(ICD10)}) THEN {norm} ELSE {c} END", "icd10_normalised"))
        elif f.name in EMPTY_IF_TOO_LONG and f.length:
            out.append((f, f"CASE WHEN length({c}) > {f.length} THEN NULL ELSE {c} END", "too_long_emptied"))
        elif buddhist_dates == "repair" and f.kind in ("D", "DT"):
            be = BE_DATE if f.kind == "D" else BE_DATETIME
            out.append((f, f"CASE WHEN regexp_full_match({c}, '{be}') THEN "
                           f"CAST(CAST(substr({c}, 1, 4) AS INTEGER) - 543 AS VARCHAR) || substr({c}, 5) ELSE {c} END",
                        "be_year_repaired"))
    return out


def _repaired(fixes: list[tuple[Field, str, str]], source: str) -> str:
    """A CTE body replacing the repaired columns of ``source`` and flagging (``<F>__fix``) the rows they changed."""
    if not fixes:
        return f"SELECT * FROM {source}"
    repl = ", ".join(f"{expr} AS {q(f.name)}" for f, expr, _rule in fixes)
    flags = ", ".join(f"coalesce({q(f.name)} IS DISTINCT FROM ({expr}), FALSE) AS {q(f.name + '__fix')}"
                      for f, expr, _rule in fixes)
    return f"SELECT * REPLACE ({repl}), {flags} FROM {source}"


def load_code_sets() -> dict[str, frozenset[str]]:
    """The terminology tables the checks consult (a table that cannot be read is left out)."""
    from phrsync.terminology import code_set

    out: dict[str, frozenset[str]] = {}
    for table in set(TERMINOLOGY_FIELDS.values()):
        try:
            codes = set(code_set(table))
        except (KeyError, OSError, ValueError):
            continue
        if table == "lab_loinc":  # old 2-digit codes are valid too
            try:
                from phrsync.terminology import get_table

                codes |= {r.get("labtest_2digit", "") for r in get_table("lab_loinc").rows} - {""}
            except Exception:  # noqa: BLE001 - the 7-digit set alone is still useful
                pass
        out[table] = frozenset(codes)
    return out


def check_sql(spec: FileSpec, source_view: str, today: dt.date, code_sets: dict[str, frozenset[str]],
              positions: tuple[int, ...] | None = None, width: int = 0, buddhist_dates: str = "quarantine") -> str:
    """One query over a batch: typed columns, the list of errors and the list of warnings per row.

    With ``positions`` the batch holds whole lines (``_raw``) that the query splits itself, and the
    line's field count is checked first: a line with too many fields (a trailing empty one is allowed)
    or cut short before a required field yields only that error (``:field_count`` / ``:truncated_line``).
    A line short of optional trailing fields is fine: missing items read as empty. Values :func:`repairs` fixes
    are checked (and staged) as fixed, with a warning."""
    typed = ", ".join(f"{typed_expr(f)} AS {q(f.name)}" for f in spec.fields)
    values = ", ".join(f"{parse_expr(f)} AS {parsed(f)}" for f in spec.fields if f.kind in ("D", "DT", "N", "I"))
    errs = [e for e in (error_expr(f, today) for f in spec.fields) if e]
    fixes = repairs(spec, buddhist_dates)
    warns = [f"CASE WHEN {q(f.name + '__fix')} THEN {lit(f.name + ':' + rule)} END" for f, _e, rule in fixes]
    warns += warning_exprs(spec, code_sets)
    # "FIELD:rule" items joined by ",", NULL when none: concat_ws skips NULLs, and a plain string per row
    # costs far less than building and filtering a list for every row when almost all are clean
    err_list = f"NULLIF(concat_ws(',', {', '.join(errs)}), '')" if errs else "NULL::VARCHAR"
    warn_list = f"NULLIF(concat_ws(',', {', '.join(warns)}), '')" if warns else "NULL::VARCHAR"
    if positions is None:
        cleaned = ", ".join(f"NULLIF(trim({q(n)}), '') AS {q(n)}" for n in spec.field_names)
        return (
            f"WITH t0 AS (SELECT {cleaned}, _line, _src, _seq FROM {source_view}), t AS ({_repaired(fixes, 't0')}), "
            f"v AS (SELECT *, {values} FROM t) "
            f"SELECT {typed}, _line, _src, _seq, {err_list} AS _errs, {warn_list} AS _warns, NULL::INTEGER AS _n "
            f"FROM v"
        )
    cleaned = ", ".join(
        (f"NULLIF(trim(_f[{pos + 1}]), '') AS {q(n)}" if pos >= 0 else f"NULL::VARCHAR AS {q(n)}")
        for n, pos in zip(spec.field_names, positions, strict=True))
    req = [pos for f, pos in zip(spec.fields, positions, strict=True) if f.required and pos >= 0]
    n = "len(_f)"
    truncated = f"WHEN {n} <= {max(req)} THEN ':truncated_line' " if req else ""
    structure = (f"CASE WHEN {n} = {width} OR ({n} = {width + 1} AND trim(_f[{n}]) = '') THEN NULL "
                 f"WHEN {n} > {width} THEN ':field_count' {truncated}END")
    return (
        f"WITH s AS (SELECT string_split(_raw, '|') AS _f, _line, _src, _seq FROM {source_view}), "
        f"t0 AS (SELECT {cleaned}, len(_f) AS _n, {structure} AS _structure, _line, _src, _seq FROM s), "
        f"t AS ({_repaired(fixes, 't0')}), "
        f"v AS (SELECT *, {values} FROM t) "
        f"SELECT {typed}, _line, _src, _seq, "
        f"CASE WHEN _structure IS NOT NULL THEN _structure ELSE {err_list} END AS _errs, "
        f"CASE WHEN _structure IS NULL THEN {warn_list} END AS _warns, _n FROM v"
    )
