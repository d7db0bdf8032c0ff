"""Patient codes: the only patient identifier the store keeps, and the check of its form.

A code is a pseudonym the practitioner chooses (``P-0042``): 1 to ``PATIENT_CODE_MAX`` ASCII
letters, digits, '-' or '_'. This module never stores a code and never touches SQLite; it only
says whether a text is a code (anything with a space in it looks like a name and is refused).
The schema's CHECK on ``patients.code`` (``schema.py``) enforces the same form in the file.
"""

from __future__ import annotations

import re
from typing import Final

from acustim.records.errors import RecordsError

__all__ = ["PATIENT_CODE_MAX", "PatientCodeError", "validate_patient_code"]

PATIENT_CODE_MAX: Final = 32

_PATIENT_CODE: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{PATIENT_CODE_MAX}}}")
_PATIENT_RULE: Final = (
    f"a patient code is a pseudonym you choose: 1 to {PATIENT_CODE_MAX} letters (A-Z, a-z),"
    " digits, '-' or '_', e.g. P-0042; never the patient's name"
)


class PatientCodeError(RecordsError):
    """A patient code is not a valid pseudonym (it may look like a name); the message says why."""


def validate_patient_code(code: object) -> str:
    """The code without surrounding blanks, or PatientCodeError saying what is wrong with it.

    A code is 1..32 ASCII letters, digits, '-' or '_': anything with a space in it looks like
    a name and is refused."""
    if not isinstance(code, str):
        raise PatientCodeError(f"a patient code must be text, got {code!r}: {_PATIENT_RULE}")
    text = code.strip()
    if _PATIENT_CODE.fullmatch(text):
        return text
    if not text:
        raise PatientCodeError(f"no patient code given: {_PATIENT_RULE}")
    if any(ch.isspace() for ch in text):
        raise PatientCodeError(
            f"patient code {text!r} has a space in it and looks like a name: {_PATIENT_RULE}"
        )
    if len(text) > PATIENT_CODE_MAX:
        shown = text if len(text) <= 40 else f"{text[:40]}..."
        raise PatientCodeError(
            f"patient code {shown!r} is {len(text)} characters long: {_PATIENT_RULE}"
        )
    bad = next(ch for ch in text if not _PATIENT_CODE.fullmatch(ch))
    raise PatientCodeError(f"patient code {text!r} contains {bad!r}: {_PATIENT_RULE}")
