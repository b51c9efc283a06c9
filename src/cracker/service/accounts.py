"""Use cases around accounts: create, top up, keys, authentication, balance."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from cracker.domain.accounts import ApiKeyInfo, ApiKeyRecord, Balance, Scope, generate_api_key, hash_api_key
from cracker.domain.clock import new_id, now
from cracker.domain.errors import InsufficientScope, InvalidApiKey, NotFound, RateLimitExceeded
from cracker.store import Reader, Store, Writer, keys


@dataclass(frozen=True, slots=True)
class IssuedKey:
    account_id: str
    key_id: str
    #: The only time the plain key exists outside the client: it is stored as a hash.
    api_key: str
    scope: Scope


def _issue_key(tx: Writer, account_id: str, scope: Scope, at: float) -> IssuedKey:
    api_key = generate_api_key()
    key_id = new_id()
    tx.insert_api_key(key_id, account_id, hash_api_key(api_key), api_key[:10], scope, at)
    return IssuedKey(account_id=account_id, key_id=key_id, api_key=api_key, scope=scope)


#: Retry-After of a refused key creation: no wait makes room, revoking a key does.
KEY_LIMIT_RETRY_AFTER_S = 60


class AccountService:
    def __init__(self, store: Store, *, auth_cache_s: float = 5.0, max_keys: int = 0) -> None:
        self._store = store
        #: Active API keys one account may hold; 0: no limit.
        self._max_keys = max_keys
        self._auth_cache_s = auth_cache_s
        # key hash -> (record, expiry). Saves a database round trip on every request; a revoked
        # key stays valid here for at most auth_cache_s.
        self._auth_cache: dict[str, tuple[ApiKeyRecord, float]] = {}

    async def create_account(self, name: str, balance: int, scope: Scope = Scope.CLIENT) -> IssuedKey:
        account_id = new_id()
        at = now()

        def work(tx: Writer) -> IssuedKey:
            tx.insert_account(account_id, name, at)
            if balance:
                tx.top_up(account_id, balance, at)
            return _issue_key(tx, account_id, scope, at)

        return await self._store.write(work)

    async def demo_key(self, name: str, balance: int) -> tuple[IssuedKey, bool]:
        """A fresh client key for the account called ``name``, created with ``balance`` if missing.

        Returns the key and whether the account was created now.
        """
        at = now()

        def work(tx: Writer) -> tuple[IssuedKey, bool]:
            account_id = tx.find_account(name)
            created = account_id is None
            if account_id is None:
                account_id = new_id()
                tx.insert_account(account_id, name, at)
                tx.top_up(account_id, balance, at)
            return _issue_key(tx, account_id, Scope.CLIENT, at), created

        return await self._store.write(work)

    async def create_key(self, account_id: str, scope: Scope) -> IssuedKey:
        at = now()

        def work(tx: Writer) -> IssuedKey:
            if not tx.account_exists(account_id):
                raise NotFound(f"No account {account_id}")
            if self._max_keys and keys.count_active_keys_locked(tx, account_id) >= self._max_keys:
                raise RateLimitExceeded(
                    KEY_LIMIT_RETRY_AFTER_S,
                    f"Account {account_id} holds {self._max_keys} active API keys, the most allowed; "
                    "revoke one first (`cracker keys revoke KEY_ID`; the limit is CRACKER_MAX_API_KEYS_PER_ACCOUNT)",
                )
            return _issue_key(tx, account_id, scope, at)

        return await self._store.write(work)

    async def list_keys(self, account_id: str) -> list[ApiKeyInfo]:
        def read(r: Reader) -> list[ApiKeyInfo] | None:
            return keys.list_keys(r, account_id) if r.account_exists(account_id) else None

        found = await self._store.read(read)
        if found is None:
            raise NotFound(f"No account {account_id}")
        return found

    async def revoke_key(self, key_id: str) -> ApiKeyInfo:
        """Revoke now. This process forgets the key at once; every other process stops accepting it
        when its cached check expires, within ``auth_cache_s``."""
        at = now()
        info = await self._store.write(lambda tx: keys.revoke_key(tx, key_id, at))
        if info is None:
            raise NotFound(f"No API key {key_id}")
        for key_hash, (record, _expiry) in list(self._auth_cache.items()):
            if record.id == key_id:
                del self._auth_cache[key_hash]
        return info

    async def top_up(self, account_id: str, amount: int, *, note: str | None = None) -> Balance:
        """Credit the account; ``note`` (an operator's reason) is kept on its ledger row."""
        at = now()

        def work(tx: Writer) -> Balance | None:
            if not tx.top_up(account_id, amount, at, note=note):
                return None
            return tx.get_balance(account_id)

        balance = await self._store.write(work)
        if balance is None:
            raise NotFound(f"No account {account_id}")
        return balance

    async def balance(self, account_id: str) -> Balance:
        balance = await self._store.read(lambda r: r.get_balance(account_id))
        if balance is None:
            raise NotFound(f"No account {account_id}")
        return balance

    async def authenticate(
        self, api_key: str, needed: Scope, *, before_lookup: Callable[[], None] | None = None
    ) -> ApiKeyRecord:
        """The key's record, with ``needed`` checked. ``before_lookup`` runs only when the key was not
        found valid within the cache's lifetime, before the database is read (the HTTP layer's
        address limit: a known key skips it, an unknown one pays it before costing a read)."""
        key_hash = hash_api_key(api_key)  # the one hash of a request (the address check took a second)
        record = self._cached(key_hash)
        if record is None:
            if before_lookup is not None:
                before_lookup()
            record = await self._store.read(lambda r: r.get_api_key(key_hash))
            # The lookup is by hash; the comparison below keeps the final check constant-time.
            if record is None or not hmac.compare_digest(record.key_hash, key_hash):
                raise InvalidApiKey()
            if self._auth_cache_s > 0:
                if len(self._auth_cache) > 100_000:
                    self._auth_cache.clear()
                self._auth_cache[key_hash] = (record, now() + self._auth_cache_s)
        if not record.scope.allows(needed):
            raise InsufficientScope(f"A {record.scope.value} key cannot call this route; it needs {needed.value}")
        return record

    def trusted_account(self, api_key: str) -> str | None:
        """The account of a key found valid within the cache's lifetime (no database read), else None."""
        record = self._cached(hash_api_key(api_key))
        return record.account_id if record is not None else None

    def _cached(self, key_hash: str) -> ApiKeyRecord | None:
        hit = self._auth_cache.get(key_hash)
        if hit is None:
            return None
        record, expiry = hit
        if expiry < now():
            del self._auth_cache[key_hash]
            return None
        return record
