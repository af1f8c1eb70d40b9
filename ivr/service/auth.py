"""API tokens and console users, hashed at rest, with read / write scopes.

A token is shown once when it is created (``ivr service token create``); the database keeps only
its SHA-256 (tokens are 32 random bytes, so a fast hash is safe) and a short prefix to tell
tokens apart. Console passwords are hashed with scrypt and a per-user salt. ``write`` includes
``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import sqlite_utils

from ivr.store import now_iso, register_schema

Scope = Literal["read", "write"]
SCOPES: tuple[str, ...] = ("read", "write")
TOKEN_PREFIX = "ivr_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class AuthError(ValueError):
    """Bad name, scope or password; the message says which."""


@register_schema
def auth_schema(db: sqlite_utils.Database) -> None:
    db.table("api_tokens").create(
        {"id": int, "name": str, "prefix": str, "hash": str, "scope": str, "created_at": str,
         "last_used_at": str, "revoked_at": str},
        pk="id", if_not_exists=True)
    db.table("api_tokens").create_index(["hash"], unique=True, if_not_exists=True)
    db.table("console_users").create(
        {"name": str, "password": str, "scope": str, "created_at": str, "disabled_at": str},
        pk="name", if_not_exists=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _scope(scope: str) -> str:
    if scope not in SCOPES:
        raise AuthError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return scope


def allows(granted: str, needed: str) -> bool:
    return granted == "write" or granted == needed


def create_token(db: sqlite_utils.Database, name: str, scope: str) -> str:
    """A new token (returned once, never stored in clear)."""
    if not name.strip() or len(name) > 100:
        raise AuthError("token name must be 1-100 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.table("api_tokens").insert({"name": name.strip(), "prefix": token[:10],
                                   "hash": _hash(token), "scope": _scope(scope),
                                   "created_at": now_iso()})
    return token


@dataclass(frozen=True)
class Principal:
    name: str  # token name or console user
    scope: str
    kind: Literal["token", "user"]


def check_token(db: sqlite_utils.Database, token: str) -> Principal | None:
    """The token's principal, or None (unknown or revoked)."""
    if not token or len(token) > 200:
        return None
    digest = _hash(token)
    row = db.execute("SELECT id, name, scope, hash FROM api_tokens WHERE hash = ? AND "
                     "revoked_at IS NULL", [digest]).fetchone()
    if row is None or not hmac.compare_digest(row[3], digest):
        return None
    db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [now_iso(), row[0]])
    return Principal(str(row[1]), str(row[2]), "token")


def list_tokens(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [dict(r) for r in db.query(
        "SELECT id, name, prefix, scope, created_at, last_used_at, revoked_at FROM api_tokens "
        "ORDER BY id")]


def revoke_token(db: sqlite_utils.Database, token_id: int) -> bool:
    return db.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                      [now_iso(), token_id]).rowcount > 0


def _scrypt(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT).hex()


def set_user(db: sqlite_utils.Database, name: str, password: str, scope: str) -> None:
    if not name.strip() or len(name) > 64:
        raise AuthError("user name must be 1-64 characters")
    if len(password) < 8:
        raise AuthError("password must have at least 8 characters")
    salt = secrets.token_bytes(16)
    db.table("console_users").upsert({
        "name": name.strip(), "password": f"scrypt${salt.hex()}${_scrypt(password, salt)}",
        "scope": _scope(scope), "created_at": now_iso(), "disabled_at": None}, pk="name")


def check_user(db: sqlite_utils.Database, name: str, password: str) -> Principal | None:
    row = db.execute("SELECT password, scope FROM console_users WHERE name = ? AND "
                     "disabled_at IS NULL", [name.strip()]).fetchone()
    # Hash anyway when the user is unknown, so timing does not tell which names exist.
    stored = row[0] if row else "scrypt$00$00"
    try:
        _kind, salt_hex, digest = stored.split("$")
        ok = hmac.compare_digest(_scrypt(password, bytes.fromhex(salt_hex)), digest)
    except ValueError:
        ok = False
    return Principal(name.strip(), str(row[1]), "user") if row and ok else None


def disable_user(db: sqlite_utils.Database, name: str) -> bool:
    return db.execute("UPDATE console_users SET disabled_at = ? WHERE name = ? AND "
                      "disabled_at IS NULL", [now_iso(), name]).rowcount > 0
