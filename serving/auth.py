"""API keys: stored as SHA-256 hashes, each with the scopes it grants."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from features.config import load_yaml_model
from features.errors import ConfigError, SwitchboardError

log = logging.getLogger(__name__)

# feedback: write outcomes to the audit store (a helpdesk's webhook), kept
# apart from route so a key can do one without the other.
# events: source systems telling of context changes (an invoice paid),
# which re-decide open tickets.
Scope = Literal["route", "feedback", "events", "admin"]
SCOPES: tuple[Scope, ...] = ("route", "feedback", "events", "admin")


class AuthError(SwitchboardError):
    """No key, or a key that is not known (HTTP 401)."""


class ScopeError(SwitchboardError):
    """A known key without the scope the endpoint needs (HTTP 403)."""


class ApiKey(BaseModel):
    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex digest of the key.")
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyFile(BaseModel):
    keys: list[ApiKey] = Field(default_factory=list)


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The keys the service accepts; empty means auth is off."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = keys

    @property
    def is_enabled(self) -> bool:
        return bool(self._keys)

    @classmethod
    def load(cls, path: Path | None, inline: str = "") -> KeyRing:
        keys = list(load_yaml_model(path, ApiKeyFile).keys) if path else []
        keys.extend(_parse_inline(inline))
        return cls(keys)

    def authenticate(self, presented: str | None, scope: Scope) -> Caller:
        """The caller behind a key, if it has `scope`.

        Raises:
            AuthError: no key or an unknown key.
            ScopeError: the key lacks the scope.
        """
        if not self.is_enabled:
            return Caller("anonymous", frozenset(SCOPES))
        if not presented:
            raise AuthError("missing API key: send it in the X-API-Key header")
        digest = hash_key(presented)
        for key in self._keys:
            if hmac.compare_digest(key.sha256, digest):
                if scope not in key.scopes:
                    raise ScopeError(
                        f"API key {key.name!r} lacks scope {scope!r} "
                        f"(it has {', '.join(key.scopes)})"
                    )
                return Caller(key.name, frozenset(key.scopes))
        raise AuthError("unknown API key")


def _parse_inline(inline: str) -> list[ApiKey]:
    keys = []
    for entry in filter(None, (part.strip() for part in inline.split(","))):
        try:
            name, digest, scopes = entry.split(":")
            keys.append(
                ApiKey.model_validate(
                    {"name": name, "sha256": digest, "scopes": scopes.split("+")}
                )
            )
        except ValueError as err:
            raise ConfigError(
                f"SWITCHBOARD_API_KEYS entry {entry.split(':')[0]!r}: expected "
                f"name:sha256hex:scope+scope with scopes from {', '.join(SCOPES)}"
            ) from err
    return keys
