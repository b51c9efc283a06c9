"""Accounts, API keys and their scopes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

#: Prefix that makes a leaked key recognisable to secret scanners.
KEY_PREFIX = "ck_"


class Scope(StrEnum):
    CLIENT = "client"  # creates and reads its account's tasks
    WORKER = "worker"  # serves tasks as a remote worker pool
    ADMIN = "admin"  # everything, including account management

    def allows(self, needed: Scope) -> bool:
        return self is Scope.ADMIN or self is needed


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    account_id: str
    key_hash: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What may be shown of a key after its creation: never the key, only its first characters."""

    id: str
    account_id: str
    prefix: str
    scope: Scope
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class Balance:
    available: int
    held: int


def generate_api_key() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
