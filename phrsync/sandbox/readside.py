"""Read side (``/api/WebApp?Action=Encounter|PatientSummary``): what a citizen would see in หมอพร้อม,
projected from the stored payloads with the column names the spec documents (§4.1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from phrsync.sandbox import codec, store
from phrsync.sandbox.payloads import BKK, parse_time
from phrsync.thai import thai_date

_VITALS = ("body_weight_kg", "body_height_cm", "body_temp_cel", "bp_systolic_mmhg", "bp_diastolic_mmhg",
           "body_mass_index", "respiratory_rate", "pulse")
_VITAL_ALIASES = {"body_weight": "body_weight_kg", "body_height": "body_height_cm", "body_temp": "body_temp_cel",
                  "bp_systolic": "bp_systolic_mmhg", "bp_diastolic": "bp_diastolic_mmhg"}
EMPTY_DATE = "1970-01-01"


def _coding(cc: Any) -> dict[str, Any]:
    """First coding of a CodeableConcept / Coding / list of CodeableConcepts (shapes vary, §7.5)."""
    if isinstance(cc, list):
        cc = cc[0] if cc else None
    if not isinstance(cc, dict):
        return {}
    cod = cc.get("coding")
    if isinstance(cod, list) and cod and isinstance(cod[0], dict):
        return cod[0]
    return cc if "code" in cc else {}


def _local(value: Any) -> str | None:
    t = parse_time(value)
    return t.astimezone(BKK).replace(tzinfo=None).isoformat(timespec="seconds") if t else None


def _vitals(v: Any) -> dict[str, Any]:
    """Flat object or the [3P] array of ``{name: {valueQuantity}}``; stored form is flat (§7.5)."""
    out: dict[str, Any] = {}
    if isinstance(v, dict):
        for k in _VITALS:
            if k in v:
                out[k] = v[k]
    elif isinstance(v, list):
        for item in v:
            if not isinstance(item, dict):
                continue
            for k, val in item.items():
                key = _VITAL_ALIASES.get(k, k)
                if key in _VITALS:
                    q = val.get("valueQuantity", {}).get("value") if isinstance(val, dict) else val
                    out[key] = q
    return out


def _texts(items: Any, fmt: str = "{code} {display}") -> list[str]:
    out = []
    for it in items if isinstance(items, list) else []:
        c = _coding(it.get("code") if isinstance(it, dict) else None)
        if c:
            out.append(fmt.format(code=c.get("code", ""), display=c.get("display", "")).strip())
    return out


def encounter_view(row: Any, facility_name: str) -> dict[str, Any]:
    enc = codec.unpack(row["data"])
    period = enc.get("period") or {}
    start = parse_time(period.get("start"))
    start_local = start.astimezone(BKK) if start else None
    cls = enc.get("class") if isinstance(enc.get("class"), dict) else _coding(enc.get("class"))
    typ = _coding(enc.get("type"))
    prio = _coding(enc.get("priority"))
    div = _coding(enc.get("division"))
    sub = _coding(enc.get("subclass"))
    vit = _vitals(enc.get("vital_signs"))
    conds = enc.get("Condition") if isinstance(enc.get("Condition"), list) else []
    icds = [c.get("code", "") for c in (_coding(x.get("code")) for x in conds if isinstance(x, dict)) if c]
    hn = ""
    for ident in enc.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("type") == "HN":
            hn = str(ident.get("value", ""))
    view: dict[str, Any] = {
        "cid": row["cid"], "organization_code": row["hospital_code"], "organization_name": facility_name,
        "encounter_ref_code": row["ref"], "hn": hn, "status": enc.get("status", ""),
        "period_start": _local(period.get("start")), "period_end": _local(period.get("end")),
        "period_start_text": thai_date(start_local.replace(tzinfo=None)) if start_local else "-",
        "period_start_ymd": start_local.strftime("%Y-%m-%d") if start_local else None,
        "period_start_ym": start_local.strftime("%Y-%m") if start_local else None,
        "period_start_y": start_local.strftime("%Y") if start_local else None,
        "class_code": cls.get("code", ""), "class_display": cls.get("display", ""),
        "subclass_code": sub.get("code", ""), "subclass_display": sub.get("display", ""),
        "priority_code": prio.get("code", ""), "priority_display": prio.get("display", ""),
        "type_code": typ.get("code", ""), "type_display": typ.get("display", ""),
        "division_code": div.get("code", ""), "division_display": div.get("display", ""),
    }
    for k in _VITALS:
        view[f"vital_sign_{k}"] = vit.get(k)
    sbp, dbp = vit.get("bp_systolic_mmhg"), vit.get("bp_diastolic_mmhg")
    view["vital_sign_bps_text"] = f"{sbp}/{dbp}" if sbp is not None and dbp is not None else ""
    for s in ("allergy", "smoking", "drinking"):
        c = _coding(enc.get(f"screen_{s}"))
        view[f"screen_{s}_code"], view[f"screen_{s}_text"] = c.get("code", ""), c.get("display", "")
    reasons = [r.get("text", "") for r in enc.get("reason") or [] if isinstance(r, dict)]
    view.update({
        "encounter_cc_text": reasons[0] if reasons else "",
        "encounter_hpi_text": reasons[1] if len(reasons) > 1 else "",
        "encounter_diagnosis_text": ", ".join(_texts(conds)),
        "encounter_diagnosis_icd": ",".join(icds),
        "encounter_coverage_text": ", ".join(
            str((c.get("class_group") or {}).get("name", "")) for c in enc.get("Coverage") or []
            if isinstance(c, dict) and isinstance(c.get("class_group"), dict)),
        "encounter_medication_text": ", ".join(_texts(enc.get("Medication"), "{display}")),
        "encounter_observation_text": ", ".join(_observation_texts(enc.get("Observation"))),
        "condition_count": len(conds),
        "coverage_count": len(enc.get("Coverage") or []),
        "medication_count": len(enc.get("Medication") or []),
        "observation_count": len(enc.get("Observation") or []),
        "diagnostic_report_count": len(enc.get("DiagnosticReport") or []),
        "finance_reimbursement_amount": enc.get("financeReimbursementAmount"),
        "finance_paid_amount": enc.get("financePaidAmount"),
        "finance_total_amount": enc.get("financeTotalAmount"),
        "is_mark": 0,
        "last_rcv_data": dt.datetime.fromtimestamp(row["received_at"], BKK).replace(tzinfo=None)
        .isoformat(timespec="seconds"),
    })
    return view


# WebApp Actions answered with the stored items themselves (plus where they came from): the spec gives
# no column list for these, so the sandbox shows what was sent.
LIST_ACTIONS = ("Immunization", "NCD", "Allergy", "Referral", "SelfObservation", "CareGiver")


def items_for(conn: Connection, action: str, cid: str) -> list[dict[str, Any]]:
    if action == "Immunization":
        t, where = store.immunizations, [store.immunizations.c.cid == cid]
    elif action == "NCD":
        t, where = store.chronic, [store.chronic.c.cid == cid]
    elif action == "Allergy":
        t, where = store.allergies, [store.allergies.c.cid == cid]
    else:
        endpoint = {"Referral": "ReferralRequest"}.get(action, action)
        t, where = store.documents, [store.documents.c.cid == cid, store.documents.c.endpoint == endpoint]
    out = []
    for r in conn.execute(select(t).where(*where).order_by(t.c.received_at)).mappings():
        item = codec.unpack(r["data"])
        out.append({"organization_code": r["hospital_code"], "cid": cid,
                    **(item if isinstance(item, dict) else {"value": item})})
    return out


def _observation_texts(obs: Any) -> list[str]:
    out = []
    for o in obs if isinstance(obs, list) else []:
        if not isinstance(o, dict):
            continue
        c = _coding(o.get("code"))
        q = o.get("valueQuantity") if isinstance(o.get("valueQuantity"), dict) else {}
        val = q.get("value", o.get("valueString", ""))
        out.append(f"{c.get('display') or c.get('code', '')} {val} {q.get('unit', '')}".strip())
    return out


def encounters_for(conn: Connection, cid: str) -> list[dict[str, Any]]:
    names = dict(conn.execute(select(store.facilities.c.hospital_code, store.facilities.c.name)).all())
    rows = conn.execute(select(store.encounters).where(store.encounters.c.cid == cid)
                        .order_by(store.encounters.c.start_utc.desc())).mappings().all()
    return [encounter_view(r, names.get(r["hospital_code"], "")) for r in rows]


def _names(patient: dict[str, Any], lang: str, cid: str, hcode: str) -> list[dict[str, Any]]:
    out = []
    for n in patient.get("name") or []:
        if not isinstance(n, dict) or str(n.get("languageCode", "TH")).upper() != lang:
            continue
        given = n.get("given") or []
        prefix = n.get("prefix") or []
        out.append({
            "prefix": prefix[0] if prefix else "", "first_name": given[0] if given else "",
            "middle_name": " ".join(given[1:]), "last_name": n.get("family", ""),
            "display_name": n.get("text") or " ".join(x for x in [*(prefix[:1]), *given, n.get("family", "")] if x),
            "cid": cid, "language_code": lang, "organization_code": hcode, "is_mark": 0,
        })
    return out


def _age_text(birth: dt.date, today: dt.date) -> str:
    y = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    m = (today.month - birth.month - (today.day < birth.day)) % 12
    return f"{y} ปี {m} เดือน"


def patient_summary(conn: Connection, cid: str, now: float) -> dict[str, Any] | None:
    row = conn.execute(select(store.persons).where(store.persons.c.cid == cid)).mappings().first()
    if row is None:
        return None
    p = codec.unpack(row["data"])
    enc = store.encounters
    n_enc, n_org = conn.execute(select(func.count(), func.count(enc.c.hospital_code.distinct()))
                                .where(enc.c.cid == cid)).one()
    chronic = conn.execute(select(store.chronic.c.data).where(store.chronic.c.cid == cid)).scalars().all()
    cd_texts = []
    for blob in chronic:
        c = _coding(codec.unpack(blob).get("code"))
        if c:
            cd_texts.append(c.get("display") or c.get("code", ""))
    allergy = [codec.unpack(b) for b in conn.execute(
        select(store.allergies.c.data).where(store.allergies.c.cid == cid)).scalars()]
    birth = parse_time(p.get("birthDate"))
    gender = p.get("gender", "")
    th_names = _names(p, "TH", cid, row["hospital_code"])
    ms = _coding(p.get("maritalStatus"))
    nat = _coding(p.get("nationality"))
    today = dt.datetime.fromtimestamp(now, BKK).date()
    patient = {
        "cid": cid,
        "birth_date": birth.date().isoformat() if birth else EMPTY_DATE,
        "gender": {"male": "M", "female": "F"}.get(gender, ""),
        "gender_text": {"male": "ชาย", "female": "หญิง"}.get(gender, ""),
        "marital_status": ms.get("code", ""), "marital_status_name": (p.get("maritalStatus") or {}).get("text", "")
        if isinstance(p.get("maritalStatus"), dict) else "",
        "deceased_boolean": bool(p.get("deceasedBoolean", False)),
        "deceased_date": EMPTY_DATE,
        "nationality_code": nat.get("code", ""), "nationality_name": nat.get("display", ""),
        "last_organization_code": row["hospital_code"],
        "encounter_count": int(n_enc), "organization_count": int(n_org),
        "cd_count": len(chronic), "cd_text": ", ".join(cd_texts),
        "patient_name_text": th_names[0]["display_name"] if th_names else "",
        "full_name_th": th_names[0]["display_name"] if th_names else "",
        "allergy_intolerance_text": ", ".join(
            _coding(a.get("code")).get("display", "") for a in allergy if isinstance(a, dict)),
        "birth_date_long_text": thai_date(birth.date(), full=True) if birth else "-",
        "birth_date_short_text": thai_date(birth.date()) if birth else "-",
        "full_age_text": _age_text(birth.date(), today) if birth else "",
        "last_rcv_data": dt.datetime.fromtimestamp(row["updated_at"], BKK).replace(tzinfo=None)
        .isoformat(timespec="seconds"),
    }
    return {"patient": patient, "patient_names_th": th_names,
            "patient_names_en": _names(p, "EN", cid, row["hospital_code"])}
