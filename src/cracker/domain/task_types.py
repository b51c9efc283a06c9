"""Task types and the request fields each accepts (a field not listed is rejected)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from cracker.domain.images import image_problem
from cracker.domain.ocr_models import GENERAL_MODEL
from cracker.domain.ocr_models import NAME_PATTERN as MODEL_NAME_PATTERN
from cracker.domain.pow_challenges import (
    ALTCHA_V1_MAX_NUMBER,
    ALTCHA_V2_MAX_COUNTERS,
    ALTCHA_V2_MAX_STEP_UNITS,
    ALTCHA_V2_MAX_WORK_UNITS,
    CAP_MAX_ATTEMPTS,
    EXPECTED_WORK_SHARE,
    FRIENDLY_MAX_ATTEMPTS,
    MCAPTCHA_MAX_ATTEMPTS,
    POW_SHA256_MAX_ATTEMPTS,
    AltchaTask,
    CapTask,
    FriendlyCaptchaTask,
    McaptchaTask,
    PowSha256Task,
)

#: No whitespace and no control characters: a URL with them can be stored but never fetched.
URL_PATTERN = r"^https?://[^\s\x00-\x1f\x7f/$.?#][^\s\x00-\x1f\x7f]*$"
#: scheme://[user:pass@]host:port
PROXY_PATTERN = r"^(https?|socks4|socks5h?)://([^:@/\s]+:[^@/\s]*@)?(\[[0-9A-Fa-f:.]+\]|[^:@/\s\[\]]+):\d{1,5}$"
_STD_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
#: A decoded image larger than this is refused at creation.
MAX_IMAGE_BYTES = 1024 * 1024
MAX_PAGE_BYTES = 1024 * 1024


def standard_base64(limit: int) -> AfterValidator:
    """Check standard (not URL-safe) padded base64 whose decoded size is at most ``limit``."""

    def check(value: str) -> str:
        if len(value) % 4 or not _STD_BASE64.match(value):
            raise PydanticCustomError(
                "invalid_base64", "Value is not standard base64 (A-Z a-z 0-9 + /, padded with =)"
            )
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PydanticCustomError("invalid_base64", "Value is not valid base64") from None
        if not decoded:
            raise PydanticCustomError("empty_value", "Value decodes to zero bytes")
        if len(decoded) > limit:
            raise PydanticCustomError(
                "too_large", "Decoded value is {size} bytes; the limit is {limit}",
                {"size": len(decoded), "limit": limit},
            )
        return value

    return AfterValidator(check)


Url = Annotated[str, Field(pattern=URL_PATTERN, max_length=2048, description="Page URL, http(s)://...")]
def _parseable_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a bad port
    except ValueError as exc:
        raise PydanticCustomError("url_parsing", "Not a valid URL: {reason}", {"reason": str(exc)}) from None
    if not parts.hostname or (port is not None and not 0 < port < 65536):
        raise PydanticCustomError("url_parsing", "The URL has no host or a bad port")
    return value


CallbackUrl = Annotated[
    str,
    Field(pattern=URL_PATTERN, max_length=2048, description="Webhook URL, http(s)://..."),
    AfterValidator(_parseable_url),
]
Proxy = Annotated[
    str, Field(pattern=PROXY_PATTERN, max_length=512, description="scheme://[user:pass@]host:port")
]
SiteKey = Annotated[str, Field(min_length=1, max_length=256, description="The site key the page uses")]
ShortText = Annotated[str, Field(max_length=256)]


class _Fields(BaseModel):
    # strict: "true" is not a bool and "5" is not an int; JSON types must be the right ones.
    model_config = ConfigDict(extra="forbid", strict=True)


class ImageToTextTask(_Fields):
    image_b64: Annotated[str, standard_base64(MAX_IMAGE_BYTES)] = Field(
        description="The captcha image (PNG, JPEG or GIF), standard base64"
    )
    case_sensitive: bool | None = None
    min_length: Annotated[int, Field(ge=1, le=32)] | None = None
    max_length: Annotated[int, Field(ge=1, le=32)] | None = None
    charset: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="The characters the answer may contain"
    )
    model: Annotated[str, Field(pattern=MODEL_NAME_PATTERN, max_length=64)] | None = Field(
        default=None,
        description=f"The OCR model to read with: {GENERAL_MODEL!r} (the default, the shipped general model) or a "
        "model the operator fine-tuned for a site's captcha; GET /v2/offers lists them. An unknown name is "
        "refused (validation_failed on model).",
    )

    @field_validator("image_b64")
    @classmethod
    def _readable_image(cls, value: str) -> str:
        # Runs after the base64 check, so the value decodes; only the image header is read here.
        problem = image_problem(base64.b64decode(value))
        if problem is not None:
            raise PydanticCustomError("invalid_image", problem)
        return value


class TurnstileTask(_Fields):
    url: Url
    site_key: SiteKey
    action: ShortText | None = None
    cdata: ShortText | None = None


class HcaptchaTask(_Fields):
    url: Url
    site_key: SiteKey
    rqdata: Annotated[str, Field(max_length=16384)] | None = None


class RecaptchaTask(_Fields):
    url: Url
    site_key: SiteKey
    action: ShortText | None = None
    enterprise: bool | None = None
    proxy: Proxy | None = None


class CfClearanceTask(_Fields):
    url: Url
    challenge_body_b64: Annotated[str, standard_base64(MAX_PAGE_BYTES)] = Field(
        description="The challenge page's HTML, standard base64"
    )
    proxy: Proxy


class VercelTask(_Fields):
    challenge_token: Annotated[str, Field(min_length=1, max_length=8192)]


@dataclass(frozen=True, slots=True)
class TaskType:
    name: str
    model: type[BaseModel]
    summary: str
    #: Who solves it: "built-in" (our own solver), "sandbox" (test keys only), "pool" (attached workers).
    solved_by: str
    aliases: tuple[str, ...] = ()
    #: The most work a proof-of-work solver spends before it rejects the task (``no_solution``),
    #: and the expected work / per-step cost above which a challenge is refused at creation
    #: (``validation_failed``); the task's deadline bounds the work too.
    work_limit: str | None = None


TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("image-to-text", ImageToTextTask, "Read the text of a distorted-text image", "built-in"),
        TaskType("altcha", AltchaTask, "ALTCHA proof of work (v1 and v2 challenges)", "built-in",
                 work_limit=f"v1: maxnumber + 1 hashes (maxnumber <= {ALTCHA_V1_MAX_NUMBER:,}); v2: one key "
                 f"derivation <= {ALTCHA_V2_MAX_STEP_UNITS:,} work units (1 unit ~ one PBKDF2-SHA-256 "
                 f"iteration), {ALTCHA_V2_MAX_WORK_UNITS:,} units and {ALTCHA_V2_MAX_COUNTERS:,} counters in "
                 f"all; a random keyPrefix expects 16**len derivations, at most 1/{EXPECTED_WORK_SHARE} of "
                 "the counters tried"),
        TaskType("cap", CapTask, "Cap (cap.js) proof of work", "built-in",
                 work_limit=f"{CAP_MAX_ATTEMPTS:,} hashes over all sub-challenges; c * 16**d expected "
                 f"hashes <= 1/{EXPECTED_WORK_SHARE} of that"),
        TaskType("mcaptcha", McaptchaTask, "mCaptcha proof of work", "built-in",
                 work_limit=f"{MCAPTCHA_MAX_ATTEMPTS:,} nonces; difficulty_factor (the expected nonces) <= "
                 f"1/{EXPECTED_WORK_SHARE} of that"),
        TaskType("friendly-captcha", FriendlyCaptchaTask, "Friendly Captcha v1 puzzle", "built-in",
                 work_limit=f"{FRIENDLY_MAX_ATTEMPTS:,} hashes over all solutions; expected hashes <= "
                 f"1/{EXPECTED_WORK_SHARE} of that"),
        TaskType("pow-sha256", PowSha256Task, "SHA-256 leading-zero proof of work", "built-in",
                 work_limit=f"{POW_SHA256_MAX_ATTEMPTS:,} nonces; 16**difficulty expected <= "
                 f"1/{EXPECTED_WORK_SHARE} of that"),
        TaskType("turnstile", TurnstileTask, "Cloudflare Turnstile token", "sandbox"),
        TaskType("hcaptcha", HcaptchaTask, "hCaptcha token", "sandbox", aliases=("noname",)),
        TaskType("recaptcha-v2", RecaptchaTask, "reCAPTCHA v2 token", "sandbox"),
        TaskType("recaptcha-v3", RecaptchaTask, "reCAPTCHA v3 token", "pool"),
        TaskType("cf-clearance", CfClearanceTask, "Cloudflare cf_clearance cookie", "pool"),
        TaskType("vercel", VercelTask, "Vercel challenge", "pool"),
    )
}
#: What any worker key may serve without an operator's grant: the types where some tasks have no
#: built-in solver (sandbox types with real site keys, pool types). A built-in type's tasks never
#: need a pool, and their parameters (images, challenges) are other accounts' data.
DEFAULT_POOL_TYPES: frozenset[str] = frozenset(t.name for t in TASK_TYPES.values() if t.solved_by != "built-in")
ALIASES: dict[str, str] = {alias: t.name for t in TASK_TYPES.values() for alias in t.aliases}


def resolve_type(name: str) -> TaskType | None:
    """The task type for a name or alias (``noname`` is ``hcaptcha``)."""
    return TASK_TYPES.get(ALIASES.get(name, name))
