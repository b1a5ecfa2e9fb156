"""Keep patient identifiers out of reports: collect them from the source headers and
redact every string of a report that holds one (a path named after the patient, a
series description with a name typed in)."""

from __future__ import annotations

import re

from pydicom.multival import MultiValue

from dipmed.volume import Volume

# Attributes whose values identify a patient (DICOM PS3.15 basic profile, the common ones)
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "AccessionNumber",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "OtherPatientNames",
    "PatientMotherBirthName",
)
MIN_TOKEN_LENGTH = 3  # shorter name parts ("LI") would redact ordinary words
REDACTED = "[redacted]"


def identifiers(*volumes: Volume | None) -> set[str]:
    """Identifier strings found in the DICOM headers behind `volumes` (none for NIfTI)."""
    found: set[str] = set()
    for volume in volumes:
        for header in getattr(getattr(volume, "source", None), "headers", ())[:1]:
            for keyword in IDENTIFYING_KEYWORDS:
                found |= _variants(keyword, header.get(keyword))
    return {token for token in found if len(token) >= MIN_TOKEN_LENGTH}


def redact(data, tokens: set[str]):
    """`data` (nested dicts, lists, strings) with every identifier token replaced."""
    if not tokens:
        return data
    pattern = re.compile(
        "|".join(rf"(?<![A-Za-z0-9]){re.escape(t)}(?![A-Za-z0-9])" for t in tokens), re.I
    )
    return _walk(data, pattern)


def _walk(data, pattern: re.Pattern):
    if isinstance(data, str):
        return pattern.sub(REDACTED, data)
    if isinstance(data, dict):
        return {key: _walk(value, pattern) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_walk(value, pattern) for value in data]
    return data


def _variants(keyword: str, value) -> set[str]:
    if value is None or value == "":
        return set()
    values = value if isinstance(value, list | tuple | MultiValue) else [value]
    out: set[str] = set()
    for item in values:
        text = str(item).strip()
        out.add(text)
        if keyword.endswith("Name") or keyword.endswith("Names"):
            out |= {part.strip() for part in re.split(r"[\^ ,]+", text) if part.strip()}
        if keyword.endswith("BirthDate") and re.fullmatch(r"\d{8}", text):
            out |= {f"{text[:4]}-{text[4:6]}-{text[6:]}", f"{text[6:]}.{text[4:6]}.{text[:4]}"}
    return out
