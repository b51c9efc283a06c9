"""What every vendor protocol shares: their error vocabulary, and our tasks' answers in their fields."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from cracker.domain.errors import CrackerError, FieldError, ValidationFailed

#: Our error codes -> the vendors' (Anti-Captcha's list, which CapSolver, CapMonster Cloud and
#: 2captcha's API v2 share). A code not listed is answered ``ERROR_`` + ours upper-cased.
VENDOR_CODES: dict[str, str] = {
    "missing_api_key": "ERROR_KEY_DOES_NOT_EXIST",
    "invalid_api_key": "ERROR_KEY_DOES_NOT_EXIST",
    "insufficient_scope": "ERROR_KEY_DOES_NOT_EXIST",
    "insufficient_balance": "ERROR_ZERO_BALANCE",
    "not_found": "ERROR_NO_SUCH_CAPCHA_ID",
    "offer_not_found": "ERROR_TASK_NOT_SUPPORTED",
    "no_solver_available": "ERROR_NO_SLOT_AVAILABLE",
    "rate_limit_exceeded": "ERROR_NO_SLOT_AVAILABLE",
    "service_unavailable": "ERROR_NO_SLOT_AVAILABLE",
    "validation_failed": "ERROR_INCORRECT_SESSION_DATA",
    "invalid_request": "ERROR_INCORRECT_SESSION_DATA",
    "payload_too_large": "ERROR_TOO_BIG_CAPTCHA_FILESIZE",
}


#: What a bad image field is called (2captcha's and Anti-Captcha's image errors).
_IMAGE_CODES = {
    "invalid_image": "ERROR_IMAGE_TYPE_NOT_SUPPORTED",
    "empty_value": "ERROR_ZERO_CAPTCHA_FILESIZE",
    "too_large": "ERROR_TOO_BIG_CAPTCHA_FILESIZE",
}
#: The vendors' numeric error ids (2captcha's API v2 table, Anti-Captcha's numbering); a code not
#: listed is 1, which every client reads as "an error" (they test errorId != 0).
ERROR_IDS: dict[str, int] = {
    "ERROR_KEY_DOES_NOT_EXIST": 1, "ERROR_NO_SLOT_AVAILABLE": 2, "ERROR_ZERO_CAPTCHA_FILESIZE": 3,
    "ERROR_TOO_BIG_CAPTCHA_FILESIZE": 4, "ERROR_ZERO_BALANCE": 10, "ERROR_CAPTCHA_UNSOLVABLE": 12,
    "ERROR_NO_SUCH_METHOD": 14, "ERROR_IMAGE_TYPE_NOT_SUPPORTED": 15, "ERROR_NO_SUCH_CAPCHA_ID": 16,
    "ERROR_TASK_ABSENT": 22, "ERROR_TASK_NOT_SUPPORTED": 23,
}


def vendor_code(exc: CrackerError) -> str:
    if isinstance(exc, ValidationFailed):
        for detail in exc.details:
            if detail.field == "body" and detail.code in _IMAGE_CODES:
                return _IMAGE_CODES[detail.code]
    return VENDOR_CODES.get(exc.code, "ERROR_" + exc.code.upper())


def describe(exc: CrackerError) -> str:
    """The message with the fields at fault, on one line (the vendors' errorDescription is a string)."""
    if not exc.details:
        return exc.message
    return exc.message + ": " + "; ".join(f"{d.field}: {d.message}" for d in exc.details)


def validation_failed(exc: ValidationError, names: dict[str, str]) -> ValidationFailed:
    """Our model's complaint in the vendor's field names (``names``: our field -> theirs)."""
    details = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = ".".join([names.get(loc[0], loc[0]), *loc[1:]]) if loc else "task"
        details.append(FieldError(field, error["type"], error["msg"]))
    return ValidationFailed(details)


def vendor_solution(task_type: str, solution: dict[str, Any]) -> dict[str, Any]:
    """Our solution in the fields the vendors' clients read for that kind of task."""
    token = solution.get("token", "")
    if task_type == "image-to-text":
        return {"text": token}
    if task_type in ("recaptcha-v2", "recaptcha-v3", "hcaptcha"):
        # Anti-Captcha and CapMonster read gRecaptchaResponse; CapSolver's hCaptcha, 2captcha's token.
        return {"gRecaptchaResponse": token, "token": token}
    return {"token": token}
