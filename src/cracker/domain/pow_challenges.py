"""Request fields of the proof-of-work task types, validated at creation (no I/O).

A malformed challenge must fail here, with per-field details, so that the service answers
``422 validation_failed`` instead of queueing a task that can only fail. Top-level task fields
forbid extras. The vendor objects inside them (the challenge as the site served it) keep the fields
the vendor adds (ALTCHA's ``codeChallenge``, Cap's ``instrumentation``...), and serialize back
exactly as served, without the defaults the models fill in: ALTCHA v2 signs every parameter, and
the answer must echo them unchanged. What is well-formed but not pure proof of work (a code
challenge, instrumentation, Cap format 2) passes here; the solver rejects it with a task error.

The limits below bound the work a task may cost; the solver modules state them as their
``MAX_ATTEMPTS`` and the offers as each type's ``work_limit``. A challenge is refused here, with
a ``work_limit_exceeded`` detail on the field at fault, when its expected work (computed from
its parameters: 16**d per Cap sub-challenge, 16**len(keyPrefix) ALTCHA v2 derivations...) is
above 1/16 of its hard cap, or when one step (an ALTCHA v2 key derivation, which cannot be
interrupted) costs more than a deadline or a cancel may be late.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from cracker.domain.json_bounds import check_json_bounds

# --------------------------------------------------------------------------- limits

#: Longest leading-zero run accepted for ``pow-sha256``: 16**7 = 268 M expected hashes.
POW_SHA256_MAX_DIFFICULTY: Final = 7
#: Hard cap on the hashes one ``pow-sha256`` task may spend (16x the expected work at the max).
POW_SHA256_MAX_ATTEMPTS: Final = 2**32
#: ALTCHA v1: the largest ``maxnumber`` accepted (a task hashes at most maxnumber + 1 numbers).
ALTCHA_V1_MAX_NUMBER: Final = 10**9
#: ALTCHA v1 default range when the challenge leaves ``maxnumber`` out.
ALTCHA_V1_DEFAULT_MAX_NUMBER: Final = 1_000_000
#: ALTCHA v2 work is counted in key-derivation units: one unit is about one PBKDF2-HMAC-SHA-256
#: iteration (0.4 us of one core on the reference machine, see ``altcha_v2_step_units``).
#: One derivation cannot be interrupted, so its cost bounds how late a running solve may stop
#: after its deadline or a cancel, and how long another task may wait for a worker:
#: 250,000 units is about 0.1 s of one core.
ALTCHA_V2_MAX_STEP_UNITS: Final = 250_000
#: The most units one task spends over all its counters (about 430 s of one core): with the
#: typical PBKDF2/SHA-256 cost 5,000 that is 214,748 counters, 20x the usual 5,000 to 10,000.
ALTCHA_V2_MAX_WORK_UNITS: Final = 2**30
#: ALTCHA v2: the most counters (key derivations) one task tries, however cheap each is.
ALTCHA_V2_MAX_COUNTERS: Final = 1_000_000
#: A keyPrefix of at least this many hex digits (and at most half the key, as altcha-lib's
#: deterministic mode issues them) is matched by chance within the counter range with odds
#: below 1 in 4,000: it is the key of the server's own secret counter, which bounds the work.
ALTCHA_V2_DETERMINISTIC_PREFIX: Final = 8
#: ALTCHA v2: memory one scrypt / Argon2id derivation may use (each worker runs one at a time).
ALTCHA_V2_MAX_KDF_MEMORY: Final = 256 * 1024 * 1024
ALTCHA_V2_MAX_PARALLELISM: Final = 16
#: ALTCHA v2 algorithm names (exact spelling, as the widget sends them) and their hashlib digests.
ALTCHA_V2_SHA_CHAINS: Final = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
ALTCHA_V2_PBKDF2_DIGESTS: Final = {
    "PBKDF2/SHA-256": "sha256",
    "PBKDF2/SHA-384": "sha384",
    "PBKDF2/SHA-512": "sha512",
}
ALTCHA_V2_ALGORITHMS: Final = frozenset({*ALTCHA_V2_SHA_CHAINS, *ALTCHA_V2_PBKDF2_DIGESTS, "SCRYPT", "ARGON2ID"})
#: Defaults of the reference implementation when a challenge leaves them out.
ALTCHA_V2_SCRYPT_DEFAULT_R: Final = 8
ALTCHA_V2_ARGON2_DEFAULT_MEMORY_KIB: Final = 65536
ALTCHA_V2_DEFAULT_PARALLELISM: Final = 1
#: Cap: the most SHA-256 hashes one task spends over all its sub-challenges.
CAP_MAX_ATTEMPTS: Final = 2**32
CAP_MAX_COUNT: Final = 10_000
CAP_MAX_SALT_CHARS: Final = 1024
CAP_MAX_DIFFICULTY: Final = 8
#: Cap: the most salt and target characters the server derives for one task (c * (s + d)); the
#: defaults (c = 50, s = 32, d = 4) derive 1,800.
CAP_MAX_DERIVED_CHARS: Final = 1 << 20
#: mCaptcha: the most SHA-256 hashes one task spends (nonces 1 .. 2**32).
MCAPTCHA_MAX_ATTEMPTS: Final = 2**32
#: Friendly Captcha v1: the most BLAKE2b hashes one task spends over all its solutions.
FRIENDLY_MAX_ATTEMPTS: Final = 2**32
FRIENDLY_BUFFER_MIN: Final = 16
FRIENDLY_BUFFER_MAX: Final = 120  # bytes 120..127 of the hashed block hold the solution
# A challenge is refused when its expected work is above this share of the hard cap: the
# chance that an honest challenge then runs out of attempts is below e**-16.
EXPECTED_WORK_SHARE: Final = 16

_MAX_TEXT: Final = 4096
_DIGEST_HEX_CHARS: Final = {"SHA-1": 40, "SHA-256": 64, "SHA-384": 96, "SHA-512": 128}


def altcha_v2_kdf_memory(algorithm: str, cost: int, memory_cost: int | None, parallelism: int | None) -> int:
    """Bytes one ALTCHA v2 key derivation needs (scrypt and Argon2id; the others need none)."""
    if algorithm == "SCRYPT":
        r = memory_cost or ALTCHA_V2_SCRYPT_DEFAULT_R
        return 128 * r * (cost + 2 + (parallelism or ALTCHA_V2_DEFAULT_PARALLELISM))
    if algorithm == "ARGON2ID":
        return 1024 * (memory_cost or ALTCHA_V2_ARGON2_DEFAULT_MEMORY_KIB)
    return 0


def altcha_v2_step_units(algorithm: str, cost: int, memory_cost: int | None, parallelism: int | None) -> int:
    """Key-derivation units one ALTCHA v2 derivation costs (see ``ALTCHA_V2_MAX_STEP_UNITS``).

    Factors measured with hashlib and argon2-cffi on one core (units of 0.4 us): a SHA-256 chain
    hash 2 (the loop runs in Python), SHA-384/512 3; a PBKDF2-SHA-256 iteration 1, SHA-384/512 3;
    scrypt 1 per N * r * p (0.46 us); Argon2id 3 per KiB of memory per pass (1 to 1.5 us).
    """
    if algorithm in ALTCHA_V2_SHA_CHAINS:
        return cost * (2 if algorithm == "SHA-256" else 3)
    if algorithm in ALTCHA_V2_PBKDF2_DIGESTS:
        return cost * (1 if algorithm == "PBKDF2/SHA-256" else 3)
    if algorithm == "SCRYPT":
        return cost * (memory_cost or ALTCHA_V2_SCRYPT_DEFAULT_R) * (parallelism or ALTCHA_V2_DEFAULT_PARALLELISM)
    return 3 * cost * (memory_cost or ALTCHA_V2_ARGON2_DEFAULT_MEMORY_KIB)


def altcha_v2_counters(step_units: int) -> int:
    """Counters one task tries: the total work budget over the cost of one derivation."""
    return max(1, min(ALTCHA_V2_MAX_COUNTERS, ALTCHA_V2_MAX_WORK_UNITS // max(1, step_units)))


def _refuse(model: str, field: str, value: Any, message: str) -> ValidationError:
    """A ``work_limit_exceeded`` error on one field, from a check that needs the whole model."""
    return ValidationError.from_exception_data(
        model,
        [InitErrorDetails(type=PydanticCustomError("work_limit_exceeded", message), loc=(field,), input=value)],
    )


def _too_much_work(message: str) -> PydanticCustomError:
    return PydanticCustomError("work_limit_exceeded", message)


# Patterns rather than validators: the OpenAPI schema shows them, and a mismatch reports the
# ``string_pattern_mismatch`` code the API documents.
HexStr = Annotated[str, Field(pattern=r"^[0-9a-fA-F]*$")]
EvenHexStr = Annotated[str, Field(pattern=r"^(?:[0-9a-fA-F]{2})*$")]
Text = Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _VendorModel(BaseModel):
    """A vendor's object: unknown fields kept, and serialized back exactly as received."""

    model_config = ConfigDict(extra="allow", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        # The whole object as received, extras included: their shape is the client's choice.
        return check_json_bounds(data)

    @model_serializer(mode="wrap")
    def _as_served(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        served = self.model_fields_set | set(self.model_extra or {})
        return {key: value for key, value in data.items() if key in served}


# --------------------------------------------------------------------------- pow-sha256


class PowSha256Task(_StrictModel):
    """``pow-sha256`` (Anubis style): find a decimal nonce giving ``difficulty`` leading zero hex digits."""

    data: Text
    difficulty: Annotated[int, Field(ge=1, le=POW_SHA256_MAX_DIFFICULTY)]


# --------------------------------------------------------------------------- ALTCHA


class AltchaV1Challenge(_VendorModel):
    """ALTCHA v1: ``challenge = hex(H(salt + decimal(number)))`` for a secret number in [0, maxnumber]."""

    algorithm: Literal["SHA-1", "SHA-256", "SHA-384", "SHA-512"]
    challenge: HexStr
    salt: Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
    signature: Annotated[str, Field(max_length=_MAX_TEXT)]
    maxnumber: Annotated[int, Field(ge=1, le=ALTCHA_V1_MAX_NUMBER)] | None = None
    maxNumber: Annotated[int, Field(ge=1, le=ALTCHA_V1_MAX_NUMBER)] | None = None
    #: ALTCHA Sentinel's human code challenge (solver rejects: not proof of work).
    codeChallenge: dict[str, Any] | None = None

    @field_validator("challenge")
    @classmethod
    def _digest_length(cls, value: str, info: ValidationInfo) -> str:
        algorithm = info.data.get("algorithm")
        if algorithm in _DIGEST_HEX_CHARS and len(value) != _DIGEST_HEX_CHARS[algorithm]:
            raise ValueError(f"must be the {_DIGEST_HEX_CHARS[algorithm]} hex digits of a {algorithm} digest")
        return value

    @model_validator(mode="after")
    def _one_range(self) -> AltchaV1Challenge:
        if None not in (self.maxnumber, self.maxNumber) and self.maxnumber != self.maxNumber:
            raise ValueError("maxnumber and maxNumber disagree")
        return self

    @property
    def max_number(self) -> int:
        return self.maxnumber or self.maxNumber or ALTCHA_V1_DEFAULT_MAX_NUMBER


def _altcha_v2_algorithm(value: str) -> str:
    if value not in ALTCHA_V2_ALGORITHMS:
        raise ValueError(f"unknown algorithm; expected one of {', '.join(sorted(ALTCHA_V2_ALGORITHMS))}")
    return value


class AltchaV2Parameters(_VendorModel):
    """The signed parameters of an ALTCHA v2 challenge (names exactly as the vendor spells them).

    Fields are declared in the order their checks need: each may read those above it.
    """

    algorithm: Annotated[str, AfterValidator(_altcha_v2_algorithm)]
    cost: Annotated[int, Field(ge=1)]
    nonce: Annotated[EvenHexStr, Field(min_length=2, max_length=512)]
    salt: Annotated[EvenHexStr, Field(min_length=2, max_length=512)]
    keyLength: Annotated[int, Field(ge=1, le=64)] = 32
    keyPrefix: Annotated[HexStr, Field(min_length=1, max_length=128)] = "00"
    keySignature: str | None = None
    expiresAt: int | None = None
    data: dict[str, Any] | None = None
    parallelism: Annotated[int, Field(ge=1, le=ALTCHA_V2_MAX_PARALLELISM)] | None = None
    memoryCost: Annotated[int, Field(ge=1)] | None = None

    @field_validator("cost")
    @classmethod
    def _cost_bounds(cls, cost: int, info: ValidationInfo) -> int:
        if info.data.get("algorithm") == "SCRYPT" and (cost < 2 or cost & (cost - 1)):
            raise ValueError("SCRYPT cost (N) must be a power of two, at least 2")
        return cost

    @field_validator("salt")
    @classmethod
    def _salt_length(cls, salt: str, info: ValidationInfo) -> str:
        if info.data.get("algorithm") == "ARGON2ID" and len(salt) < 16:
            raise ValueError("ARGON2ID needs a salt of at least 8 bytes")
        return salt

    @field_validator("keyLength")
    @classmethod
    def _key_length(cls, key_length: int, info: ValidationInfo) -> int:
        algorithm = info.data.get("algorithm")
        if algorithm in ALTCHA_V2_SHA_CHAINS and 2 * key_length > _DIGEST_HEX_CHARS[algorithm]:
            raise ValueError(f"longer than a {algorithm} digest")
        return key_length

    @field_validator("keyPrefix")
    @classmethod
    def _prefix_length(cls, prefix: str, info: ValidationInfo) -> str:
        if len(prefix) > 2 * info.data.get("keyLength", 32):
            raise ValueError("longer than the derived key")
        return prefix

    @field_validator("memoryCost")
    @classmethod
    def _memory(cls, memory_cost: int | None, info: ValidationInfo) -> int | None:
        algorithm, cost = info.data.get("algorithm"), info.data.get("cost")
        if algorithm is None or cost is None:
            return memory_cost
        parallelism = info.data.get("parallelism")
        if algorithm == "ARGON2ID" and memory_cost is not None and memory_cost < 8 * (parallelism or 1):
            raise ValueError("ARGON2ID needs at least 8 KiB per lane")
        if algorithm == "SCRYPT" and memory_cost is not None and memory_cost > 64:
            raise ValueError("SCRYPT block size r above 64")
        if altcha_v2_kdf_memory(algorithm, cost, memory_cost, parallelism) > ALTCHA_V2_MAX_KDF_MEMORY:
            raise ValueError(f"one key derivation would need more than {ALTCHA_V2_MAX_KDF_MEMORY >> 20} MiB")
        return memory_cost

    @model_validator(mode="after")
    def _default_memory(self) -> AltchaV2Parameters:
        # memoryCost left out: the defaults (r = 8, 64 MiB) may still be too much for a large cost.
        if (
            self.memoryCost is None
            and altcha_v2_kdf_memory(self.algorithm, self.cost, None, self.parallelism) > ALTCHA_V2_MAX_KDF_MEMORY
        ):
            raise ValueError(f"one key derivation would need more than {ALTCHA_V2_MAX_KDF_MEMORY >> 20} MiB")
        return self

    @model_validator(mode="after")
    def _bounded_work(self) -> AltchaV2Parameters:
        step = self.step_units
        if step > ALTCHA_V2_MAX_STEP_UNITS:
            raise _refuse(
                "AltchaV2Parameters", "cost", self.cost,
                f"one {self.algorithm} key derivation with these cost / memoryCost / parallelism values is "
                f"{step:,} work units, above the limit of {ALTCHA_V2_MAX_STEP_UNITS:,} (about 0.1 s of one core)",
            )
        prefix = len(self.keyPrefix)
        if ALTCHA_V2_DETERMINISTIC_PREFIX <= prefix <= self.keyLength:
            return self  # the server's secret counter: its search is bounded by self.counters
        expected = 16**prefix
        if expected > self.counters // EXPECTED_WORK_SHARE:
            raise _refuse(
                "AltchaV2Parameters", "keyPrefix", self.keyPrefix,
                f"a keyPrefix of {prefix} hex digits needs 16**{prefix} key derivations on average, above "
                f"{self.counters // EXPECTED_WORK_SHARE:,} (1/{EXPECTED_WORK_SHARE} of the {self.counters:,} "
                f"counters this server tries at this cost); the server's own key (deterministic mode) may use "
                f"{ALTCHA_V2_DETERMINISTIC_PREFIX} to {self.keyLength} hex digits (at most half the key)",
            )
        return self

    @property
    def step_units(self) -> int:
        """Work units of one key derivation."""
        return altcha_v2_step_units(self.algorithm, self.cost, self.memoryCost, self.parallelism)

    @property
    def counters(self) -> int:
        """Counters the solver tries before it answers ``no_solution``."""
        return altcha_v2_counters(self.step_units)


class AltchaV2Challenge(_VendorModel):
    """ALTCHA v2 (widget 3.x): derive keys for counters 0, 1, ... until one starts with keyPrefix."""

    parameters: AltchaV2Parameters
    signature: Annotated[str, Field(max_length=_MAX_TEXT)] | None = None
    codeChallenge: dict[str, Any] | None = None


def _altcha_version(value: Any) -> str:
    if isinstance(value, dict):
        return "v2" if "parameters" in value else "v1"
    return "v2" if hasattr(value, "parameters") else "v1"


AltchaChallenge = Annotated[
    Annotated[AltchaV1Challenge, Tag("v1")] | Annotated[AltchaV2Challenge, Tag("v2")],
    Discriminator(_altcha_version),
]


class AltchaTask(_StrictModel):
    """``altcha``: the challenge object as the site serves it, ALTCHA v1 or v2.

    Error locations name the version picked: ``("challenge", "v1", "salt")``.
    """

    challenge: AltchaChallenge


# --------------------------------------------------------------------------- Cap


class CapConfig(_StrictModel):
    """Cap format 1: ``c`` sub-challenges, salts of ``s`` hex digits, targets of ``d`` hex digits."""

    c: Annotated[int, Field(ge=1, le=CAP_MAX_COUNT)]
    s: Annotated[int, Field(ge=1, le=CAP_MAX_SALT_CHARS)]
    d: Annotated[int, Field(ge=1, le=CAP_MAX_DIFFICULTY)]

    @model_validator(mode="after")
    def _bounded(self) -> CapConfig:
        if self.c * 16**self.d > CAP_MAX_ATTEMPTS // EXPECTED_WORK_SHARE:
            raise _refuse(
                "CapConfig", "c", self.c,
                f"c * 16**d = {self.c * 16**self.d:,} expected hashes, above "
                f"{CAP_MAX_ATTEMPTS // EXPECTED_WORK_SHARE:,} (1/{EXPECTED_WORK_SHARE} of the "
                f"{CAP_MAX_ATTEMPTS:,} hashes this server spends on a task)",
            )
        if self.c * (self.s + self.d) > CAP_MAX_DERIVED_CHARS:
            # The salts and targets are derived before any hashing, by the server itself.
            raise _refuse(
                "CapConfig", "c", self.c,
                f"c * (s + d) = {self.c * (self.s + self.d):,} characters of salts and targets, "
                f"above {CAP_MAX_DERIVED_CHARS:,}",
            )
        return self


class CapChallenge(_VendorModel):
    """The site's answer to ``POST .../challenge``.

    Format 2 (a list of typed challenges) and instrumentation pass validation so that the solver
    can reject them with ``unsupported_challenge``.
    """

    challenge: Annotated[
        Annotated[CapConfig, Tag("format1")] | Annotated[list[dict[str, Any]], Tag("format2")],
        Discriminator(lambda value: "format2" if isinstance(value, list) else "format1"),
    ]
    token: Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
    #: Expiry, milliseconds since the epoch.
    expires: float | None = None
    format: int | None = None
    instrumentation: Any = None


class CapTask(_StrictModel):
    """``cap``: the Cap widget's challenge, as the site answered ``POST .../challenge``.

    Error locations name the format picked: ``("challenge", "challenge", "format1", "d")``.
    """

    challenge: CapChallenge


# --------------------------------------------------------------------------- mCaptcha


class McaptchaConfig(_VendorModel):
    """The site's answer to ``POST /api/v1/pow/config``."""

    string: Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
    salt: Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
    difficulty_factor: Annotated[int, Field(ge=1, le=MCAPTCHA_MAX_ATTEMPTS // EXPECTED_WORK_SHARE)]
    max_recorded_nonce: Annotated[int, Field(ge=0)] | None = None


class McaptchaTask(_StrictModel):
    """``mcaptcha``: the PoW config and the widget's site key (the verify body's ``key``)."""

    config: McaptchaConfig
    site_key: Annotated[str, Field(min_length=1, max_length=256)]


# --------------------------------------------------------------------------- Friendly Captcha


def friendly_threshold(difficulty: int) -> int:
    """The widget's ``difficultyToThreshold``: a hash passes when its first LE uint32 is below this."""
    return int(2 ** ((255.999 - min(max(difficulty, 0), 255)) / 8.0))


def _friendly_puzzle(value: str) -> str:
    parts = value.split(".")
    if len(parts) != 2 or not parts[0]:
        raise ValueError("must be '<signature>.<base64 buffer>'")
    try:
        buffer = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the puzzle buffer is not valid standard base64") from exc
    if not FRIENDLY_BUFFER_MIN <= len(buffer) <= FRIENDLY_BUFFER_MAX:
        raise ValueError(f"the puzzle buffer must hold {FRIENDLY_BUFFER_MIN} to {FRIENDLY_BUFFER_MAX} bytes")
    count, difficulty = buffer[14], buffer[15]
    if count == 0:
        raise ValueError("the puzzle asks for 0 solutions")
    expected = count * 2**32 // max(friendly_threshold(difficulty), 1)
    if expected > FRIENDLY_MAX_ATTEMPTS // EXPECTED_WORK_SHARE:
        raise _too_much_work(
            f"difficulty {difficulty} x {count} solutions is {expected:,} expected hashes, above "
            f"{FRIENDLY_MAX_ATTEMPTS // EXPECTED_WORK_SHARE:,} (1/{EXPECTED_WORK_SHARE} of the "
            f"{FRIENDLY_MAX_ATTEMPTS:,} hashes this server spends on a task)"
        )
    return value


class FriendlyCaptchaTask(_StrictModel):
    """``friendly-captcha``: a Friendly Captcha v1 puzzle string ``<signature>.<base64 buffer>``."""

    puzzle: Annotated[str, Field(min_length=3, max_length=_MAX_TEXT), AfterValidator(_friendly_puzzle)]
