"""The code-system and identifier URIs of MOPH-PHR payloads, in one place for the mapping and the
validator (moph-phr-api.md §2.0, §3 and §6)."""

SYS_HCODE = "https://bps.moph.go.th/hcode/5"
SYS_CID = "https://www.dopa.go.th"
PHR_CS = "https://phr1.moph.go.th/api/CodingSystem?System="
SYS_ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SYS_LOINC = "http://loinc.org"
SYS_ICD10 = "http://hl7.org/fhir/sid/icd-10"
SYS_TMT = "https://www.this.or.th/tmt/gp"
SYS_SNOMED = "http://snomed.info/sct"
SYS_UCUM = "http://unitsofmeasure.org"
SYS_VACCINE = "https://refcode.moph.go.th/vaccine"
SYS_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
SYS_ALLERGY_VERIF = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
SYS_COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
SYS_HN = "https://sil-th.org/hn"
SYS_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
SYS_COND_VERIF = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SYS_EPRESCRIPTION = "https://phr1.moph.go.th/eprescription"
SYS_F43 = "urn:phrsync:f43:"  # local namespace: 43-file codes with no published URI
SYS_TYPEIN = "https://terms.sil-th.org/core/CodeSystem/cs-thcc-admit-source"  # encounter_type.csv
