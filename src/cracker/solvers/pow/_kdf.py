"""ALTCHA v2 key derivation: each algorithm through its maintained implementation.

``hashlib`` (OpenSSL) for the SHA chains, PBKDF2 and scrypt; ``argon2-cffi`` for Argon2id. The
spec tuple is what the parent sends to a worker: plain values, cheap to pickle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import NamedTuple

from cracker.domain.pow_challenges import (
    ALTCHA_V2_ARGON2_DEFAULT_MEMORY_KIB,
    ALTCHA_V2_DEFAULT_PARALLELISM,
    ALTCHA_V2_PBKDF2_DIGESTS,
    ALTCHA_V2_SCRYPT_DEFAULT_R,
    ALTCHA_V2_SHA_CHAINS,
    altcha_v2_kdf_memory,
)

#: Derives a key from ``(salt, password)``.
Deriver = Callable[[bytes, bytes], bytes]


class KdfSpec(NamedTuple):
    algorithm: str
    cost: int
    key_length: int
    memory_cost: int | None
    parallelism: int | None


def deriver(spec: KdfSpec) -> Deriver:
    """The derivation function of a challenge's parameters."""
    algorithm, cost, key_length, memory_cost, parallelism = spec
    if algorithm in ALTCHA_V2_SHA_CHAINS:
        name = ALTCHA_V2_SHA_CHAINS[algorithm]
        rounds = max(1, cost)

        def sha_chain(salt: bytes, password: bytes) -> bytes:
            # H(salt || password), then re-hashed: ``cost`` hashes in all, as altcha-lib does.
            digest = hashlib.new(name, salt + password).digest()
            for _ in range(rounds - 1):
                digest = hashlib.new(name, digest).digest()
            return digest[:key_length]

        return sha_chain
    if algorithm in ALTCHA_V2_PBKDF2_DIGESTS:
        digest_name = ALTCHA_V2_PBKDF2_DIGESTS[algorithm]
        return lambda salt, password: hashlib.pbkdf2_hmac(digest_name, password, salt, cost, key_length)
    if algorithm == "SCRYPT":
        r = memory_cost or ALTCHA_V2_SCRYPT_DEFAULT_R
        p = parallelism or ALTCHA_V2_DEFAULT_PARALLELISM
        maxmem = altcha_v2_kdf_memory(algorithm, cost, r, p) + (1 << 20)
        return lambda salt, password: hashlib.scrypt(
            password, salt=salt, n=cost, r=r, p=p, dklen=key_length, maxmem=maxmem
        )
    if algorithm == "ARGON2ID":
        from argon2.low_level import Type, hash_secret_raw  # imported only where Argon2id runs

        memory_kib = memory_cost or ALTCHA_V2_ARGON2_DEFAULT_MEMORY_KIB
        lanes = parallelism or ALTCHA_V2_DEFAULT_PARALLELISM
        return lambda salt, password: hash_secret_raw(
            secret=password,
            salt=salt,
            time_cost=cost,
            memory_cost=memory_kib,
            parallelism=lanes,
            hash_len=key_length,
            type=Type.ID,
        )
    raise ValueError(f"unknown ALTCHA v2 algorithm {algorithm!r}")
