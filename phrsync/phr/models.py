"""Typed models of the MOPH-PHR upload payloads (pydantic v2), for documentation and OpenAPI schemas.

These describe the shapes of the spec (moph-phr-api.md §2–3) so the local server's /openapi.json and
the docs show real schemas. They are deliberately lenient (extra keys allowed, alternative shapes of
§7.5 accepted): the authority on what is valid is :mod:`phrsync.phr.validate`, which is also much
faster on plain dicts. ``ENDPOINT_MODELS`` maps endpoint names to their request model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, RootModel

from phrsync.phr.validate import PHR_CS, SYS_ACTCODE, SYS_CID, SYS_HCODE


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- FHIR-like building blocks ---------------------------------------------------------------------

class Coding(_Model):
    """One code from one code system; ``system`` is required in real payloads (spec intro)."""

    system: str = Field(description="Code-system URI, e.g. http://hl7.org/fhir/sid/icd-10")
    code: str
    display: str | None = None


class CodeableConcept(_Model):
    coding: list[Coding] = Field(default_factory=list, min_length=0)
    text: str | None = None


class Period(_Model):
    start: str | None = Field(None, description="ISO 8601 date-time; zone-less = Asia/Bangkok (§7.9)")
    end: str | None = None


class Quantity(_Model):
    value: float
    unit: str | None = None
    system: str | None = None
    code: str | None = None


class Reference(_Model):
    reference: str | None = Field(None, description="'Practitioner/<licence>'")
    identifier: str | None = None
    display: str | None = None


class OrganizationIdentifier(_Model):
    use: Literal["official"] = "official"
    system: Literal["https://bps.moph.go.th/hcode/5"] = SYS_HCODE
    value: str = Field(pattern=r"^[0-9]{5}$", description="5-digit HCODE")


class Organization(_Model):
    """managingOrganization (§2.0)."""

    type: Literal["Organization"] = "Organization"
    identifier: OrganizationIdentifier
    display: str = Field(min_length=1, description="facility name")
    agent: str | None = Field(None, description="sending software and version (expected for UpdatePHRv1)")
    scope: str | None = Field(None, description="'ALL' = the payload is the patient's full history (§3.3)")


class Identifier(_Model):
    use: str | None = None
    system: str
    type: str | dict[str, Any] | None = Field(None, description="'CID' for the national ID, 'HN' for a hospital number")
    value: str
    assigner: dict[str, Any] | None = None
    period: Period | None = None


class HumanName(_Model):
    use: Literal["usual", "official", "temp", "nickname", "anonymous", "old", "maiden"] | None = None
    languageCode: str | None = Field(None, description="TH or EN")
    text: str | None = None
    prefix: list[str] = Field(default_factory=list)
    given: list[str] = Field(default_factory=list)
    family: str | None = None
    suffix: list[str] = Field(default_factory=list)
    period: Period | None = None


class ContactPoint(_Model):
    system: Literal["phone", "fax", "email", "pager", "url", "sms", "other"] | None = None
    value: str
    use: Literal["home", "work", "temp", "old", "mobile"] | None = None
    rank: int | None = None


class Address(_Model):
    use: str | None = None
    type: str | None = None
    text: str | None = None
    line: list[str] = Field(default_factory=list)
    city: str | None = Field(None, description="amphoe")
    district: str | None = Field(None, description="tambon")
    state: str | None = Field(None, description="province")
    postalCode: str | None = None
    country: str | None = None
    address_code: str | int | None = Field(None, description="6-digit tambon code (province+amphoe+tambon)")


class PatientResource(_Model):
    """Patient (§3.1): the CID identifier, name, gender and birthDate are required."""

    identifier: list[Identifier] = Field(min_length=1, description=f"must include the CID ({SYS_CID}, type CID)")
    active: bool | None = None
    name: list[HumanName] = Field(min_length=1)
    telecom: list[ContactPoint] = Field(default_factory=list)
    gender: Literal["male", "female"]
    birthDate: str = Field(description="yyyy-mm-dd, Gregorian year")
    deceasedBoolean: bool | None = None
    maritalStatus: CodeableConcept | None = None
    address: list[Address] = Field(default_factory=list)
    nationality: CodeableConcept | None = Field(None, description=f"{PHR_CS}nationality, e.g. 099")
    contact: list[dict[str, Any]] = Field(default_factory=list)


# --- UpdatePHRv1 encounter parts (§3.2) ---------------------------------------------------------

class VitalSigns(_Model):
    """Flat vital signs (the preferred form; an array form is also accepted, §7.5)."""

    body_weight_kg: float | None = None
    body_height_cm: float | None = None
    body_temp_cel: float | None = None
    bp_systolic_mmhg: float | None = None
    bp_diastolic_mmhg: float | None = None
    body_mass_index: float | None = None
    respiratory_rate: float | None = None
    pulse: float | None = None


class CoverageClassGroup(_Model):
    value: str = Field(description="scheme group, e.g. UCS")
    name: str | None = None


class CoverageResource(_Model):
    """Insurance scheme of a visit: minimal ``class_group`` form or the FHIR-like form (§3.2)."""

    class_group: CoverageClassGroup | None = None
    status: str | None = None
    type: CodeableConcept | None = None
    period: Period | None = None
    class_: list[dict[str, Any]] | None = Field(None, alias="class")
    reimbursementAmount: float | None = None


class ObservationResource(_Model):
    """Lab result: LOINC (http://loinc.org) or a local lab system."""

    status: str | None = None
    code: CodeableConcept
    valueQuantity: Quantity | None = None
    valueString: str | None = None
    effectiveDateTime: str | None = None
    issued: str | None = None
    referenceRange: list[dict[str, Any]] | None = None


class ConditionResource(_Model):
    """Diagnosis coded in ICD-10 (http://hl7.org/fhir/sid/icd-10)."""

    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    category: list[CodeableConcept] | None = None
    severity: CodeableConcept | None = None
    code: CodeableConcept
    bodySite: list[CodeableConcept] | None = None
    recordedDate: str | None = None


class MedicationResource(_Model):
    """Drug dispensed: TMT GP code; minimal or ``statement`` form (§3.2)."""

    code: CodeableConcept
    status: str | None = None
    category: str | CodeableConcept | None = None
    form: CodeableConcept | None = None
    finance: dict[str, Any] | None = None
    statement: dict[str, Any] | None = None


class AppointmentResource(_Model):
    status: Literal["proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                    "entered-in-error", "checked-in", "waitlist"]
    description: str | None = None
    start: str
    end: str | None = None
    created: str | None = None
    serviceType: list[CodeableConcept] | None = None
    note: list[dict[str, Any]] | None = None


class ImmunizationResource(_Model):
    """A vaccination (§2.4); inside an Encounter ``encounterRefCode`` may be left out."""

    managingOrganization: Organization | None = None
    status: Literal["completed", "entered-in-error", "not-done"]
    vaccineCode: CodeableConcept = Field(description="43-file vaccine code, system https://refcode.moph.go.th/vaccine")
    encounterRefCode: str | None = Field(None, description="'HCODE:VN'; the replacement key of the register")
    occurrenceDateTime: str
    primarySource: bool | None = None
    location: str | None = None
    manufacturer: str | None = None
    lotNumber: str | None = None
    expirationDate: str | None = None
    site: CodeableConcept | None = None
    route: CodeableConcept | None = None
    doseQuantity: Quantity | None = None
    note: list[dict[str, Any]] | None = None
    reasonCode: list[CodeableConcept] | None = None
    performer: dict[str, Any] | None = None


class EncounterClass(Coding):
    system: str = SYS_ACTCODE
    code: str = Field(description="AMB outpatient, IMP inpatient, EMER emergency, ...")


class EncounterResource(_Model):
    """One visit or admission (§3.2). identifier.value is 'HCODE:VN' (§7.3)."""

    identifier: list[Identifier] = Field(min_length=1)
    managingOrganization: Organization | None = None
    status: str = Field(description="FHIR Encounter status, usually 'finished'")
    class_: EncounterClass = Field(alias="class")
    type: list[CodeableConcept] | CodeableConcept
    priority: dict[str, Any] | None = None
    subclass: dict[str, Any] | None = None
    division: dict[str, Any] | None = None
    period: Period
    reason: list[dict[str, Any]] | None = None
    financeTotalAmount: float | None = None
    financeReimbursementAmount: float | None = None
    financePaidAmount: float | None = None
    Coverage: list[CoverageResource] | None = None
    vital_signs: VitalSigns | list[dict[str, Any]] | None = None
    Observation: list[ObservationResource] | None = None
    Condition: list[ConditionResource] | None = None
    Medication: list[MedicationResource] | None = None
    Claim: list[Any] | None = None
    Appointment: list[AppointmentResource] | None = None
    Immunization: list[ImmunizationResource] | None = None
    DiagnosticReport: list[dict[str, Any]] | None = None


class AllergyIntoleranceResource(_Model):
    """A drug or food allergy (§2.2)."""

    managingOrganization: Organization | None = None
    identifier: list[dict[str, Any]] | None = None
    clinicalStatus: CodeableConcept
    verificationStatus: CodeableConcept
    type: Literal["allergy", "intolerance"]
    category: list[Literal["food", "medication", "environment", "biologic"]]
    criticality: Literal["low", "high", "unable-to-assess"] | None = None
    code: CodeableConcept = Field(description=f"substance, {PHR_CS}tmt_substance")
    seriousness: CodeableConcept | None = None
    allergyGroup: CodeableConcept | None = None
    allergyInformationSource: CodeableConcept | None = None
    allergyResult: CodeableConcept | None = None
    naranjoResult: CodeableConcept | None = None
    preventable: bool | None = None
    preventableScore: float | None = None
    recordedDate: str
    recordOfficer: Reference | None = None
    reaction: list[dict[str, Any]] | None = None


class ChronicDiseaseRegisterResource(_Model):
    """One NCD registry row (§2.3), keyed by ``chronic_ref_code``."""

    managingOrganization: Organization | None = None
    code: CodeableConcept = Field(description=f"cd_code, {PHR_CS}chronic_disease (001 = diabetes)")
    clinicalStatus: CodeableConcept
    chronic_ref_code: str = Field(min_length=1)
    clinicalText: str | None = None
    registerDate: str
    dischargeDate: str | None = None
    recordedDate: str | None = None
    description: list[str] | None = None
    condition: list[dict[str, Any]] | None = None


class EncounterSummaryDay(_Model):
    """One day's counts; the tester's key names are accepted as aliases (§7.5)."""

    period_start: str = Field(description="yyyy-mm-dd", validation_alias=AliasChoices("period_start", "period_end"))
    opd_encounter_count: int = Field(ge=0, validation_alias=AliasChoices("opd_encounter_count", "opd_count"))
    ipd_encounter_count: int = Field(ge=0, validation_alias=AliasChoices("ipd_encounter_count", "ipd_count"))
    ipd_discharge_count: int = Field(ge=0)


# --- request bodies ---------------------------------------------------------------------------------

class UpdatePHRv1(_Model):
    """POST /api/UpdatePHRv1: one person, demographics and at least one Encounter (§2.1, §3)."""

    managingOrganization: Organization
    Patient: PatientResource
    AllergyIntolerance: list[AllergyIntoleranceResource] = Field(default_factory=list)
    CarePlan: list[Any] = Field(default_factory=list)
    Encounter: list[EncounterResource] = Field(min_length=1)


class AllergyIntolerancev1(_Model):
    """POST /api/AllergyIntolerancev1 (§2.2)."""

    managingOrganization: Organization
    Patient: PatientResource
    AllergyIntolerance: list[AllergyIntoleranceResource] = Field(min_length=1)


class PatientChronicRegisterv1(_Model):
    """POST /api/PatientChronicRegisterv1 (§2.3)."""

    managingOrganization: Organization
    Patient: PatientResource
    ChronicDiseaseRegister: list[ChronicDiseaseRegisterResource] = Field(min_length=1)


class ImmunizationRegisterv1(_Model):
    """POST /api/ImmunizationRegisterv1 (§2.4): the person's full vaccine list at this facility."""

    managingOrganization: Organization
    Patient: PatientResource
    Immunization: list[ImmunizationResource]


class OrgEncounterSummary(_Model):
    """POST /api/OrgEncounterSummary (§2.9): daily counts, one month or less per call."""

    managingOrganization: Organization
    EncounterSummary: list[EncounterSummaryDay] = Field(min_length=1)


class ResourceListPayload(_Model):
    """Shared shape of the other uploads (§2.5, §2.7, §2.8, §2.10): {managingOrganization, Patient, <Resource>[]}."""

    managingOrganization: Organization
    Patient: PatientResource


class ReferralRequest(ResourceListPayload):
    ReferralRequest: list[dict[str, Any]] = Field(min_length=1)


class CareGiver(ResourceListPayload):
    CareGiver: list[dict[str, Any]] = Field(min_length=1)


class MedicationRequest(ResourceListPayload):
    MedicationRequest: list[dict[str, Any]] = Field(min_length=1)


class DrugRelatedProblem(ResourceListPayload):
    DrugRelatedProblem: list[dict[str, Any]] = Field(min_length=1)


class SelfObservationPerson(_Model):
    cid: str = Field(pattern=r"^[0-9]{13}$")
    prefix: str
    first_name: str
    last_name: str
    birth_date: str
    gender: Literal["M", "F"]


class SelfObservationValue(_Model):
    reference_id: str
    loinc_code: str
    loinc_display: str
    effective_datetime: str
    device_display: str | None = None
    performer_display: str | None = None
    observation_value: str = Field(description="the value, as a string")
    observation_unit: str


class SelfObservation(_Model):
    """POST /api/SelfObservation (§2.6): flat, no managingOrganization or Patient."""

    system_name: str
    location_gis: dict[str, Any] | None = None
    observation_ref_code: str
    person: SelfObservationPerson
    observation: SelfObservationValue


class PatientChronicRegisterv1Remove(RootModel[list[str]]):
    """POST /api/PatientChronicRegisterv1?mode=remove&cd_code=...: chronic_ref_code values; [] removes all."""


class UpdateAgentStatus(_Model):
    """POST /api/UpdateAgentStatus (and ?mode=Error with only the first two fields), at most every 5 s."""

    hospital_code: str = Field(pattern=r"^[0-9]{5}$")
    agent_status: str
    agent_computer_name: str | None = None
    most_client_version: str | None = None
    agent_version: str | None = None


class GetAgentComputerName(_Model):
    """POST /api/GetAgentComputerName: which computer last reported sending for this facility."""

    hospital_code: str = Field(pattern=r"^[0-9]{5}$")


class MaskEncounter(_Model):
    """POST /api/MaskEncounter?mode=set|get."""

    cid: str = Field(pattern=r"^[0-9]{13}$")
    encounter_ref_code: str


ENDPOINT_MODELS: dict[str, type[BaseModel]] = {
    "UpdatePHRv1": UpdatePHRv1,
    "AllergyIntolerancev1": AllergyIntolerancev1,
    "PatientChronicRegisterv1": PatientChronicRegisterv1,
    "ImmunizationRegisterv1": ImmunizationRegisterv1,
    "OrgEncounterSummary": OrgEncounterSummary,
    "ReferralRequest": ReferralRequest,
    "SelfObservation": SelfObservation,
    "CareGiver": CareGiver,
    "MedicationRequest": MedicationRequest,
    "DrugRelatedProblem": DrugRelatedProblem,
    "PatientChronicRegisterv1_remove": PatientChronicRegisterv1Remove,
    "UpdateAgentStatus": UpdateAgentStatus,
    "GetAgentComputerName": GetAgentComputerName,
    "MaskEncounter": MaskEncounter,
}
