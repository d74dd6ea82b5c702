"""Personal data in events: sealed (encrypted), blind-indexed for look-ups, masked for display.

Events are immutable and published to Kafka, so an identity number or phone number
must never appear in them in clear (docs/decisions/0008-personal-data-in-events.md):
- ``seal``: AES-256-GCM under a key derived with HKDF from the platform's data key
  (``PII_KEY``), per key id and per data subject (ADR 0033); a service holding the key
  (verification checking a real name) can ``open`` it, given the same subject.
- ``blind``: a keyed HMAC of the normalised value, so that equal values can be matched
  (account limits, re-registration bans) without storing or publishing the value.
- ``mask_*``: what exports, logs and public pages show.

The sealed form (ADR 0033) is ``v2:<key id>:<base64url(nonce || ciphertext || tag)>``.
The key is HKDF-SHA-256 of the key id's secret with ``info = "pii-seal" 0 <key id> 0
<subject>``, and the associated data repeats the header and the subject, so a value sealed
for one subject opens for no other and says which key sealed it. The subject of a value
is the blind index of the identity it belongs to (``id_number_blind``: the registrant, the
transferee, the new owner; a contact given with an identity belongs to it) or, for a
member of the public with no identity (a complaint's contact), the case id.

``v1:`` values (before ADR 0033: one key, no subject) still open, with the key derived
as it was then; nothing seals them any more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from libs.events.contracts._common import SealedIdentity

_LEGACY = "v1:"
_FORMAT = "v2"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NONCE = 12
LEGACY_KEY_ID = "v1"  # the retired key entry that opens ``v1:`` values, if not PII_KEY
LEGACY_BLIND_KEY_ID = "v1"  # the blind index key as derived before ADR 0033 (kept)


class SealError(ValueError):
    """A sealed value that cannot be opened here: malformed, sealed under a key id this
    service does not hold, or sealed for another subject or under another key."""


def _hkdf(secret: str, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(
        secret.encode())


class Sealer:
    """Seals, opens and blind-indexes personal data with keys derived from configured secrets.

    ``secret`` is the current key (``PII_KEY``) under id ``key_id`` (``PII_KEY_ID``): new
    values are sealed under it. ``retired`` maps older key ids to their secrets
    (``PII_RETIRED_KEYS``): values sealed under them still open. ``blind_key_id``
    (``PII_BLIND_KEY_ID``) names the blind index key: ``v1`` is the derivation used since
    the first events (changing it changes every blind index, see ADR 0033).
    """

    def __init__(self, secret: str, *, key_id: str = "k1",
                 retired: Mapping[str, str] | None = None,
                 blind_key_id: str = LEGACY_BLIND_KEY_ID) -> None:
        for kid in (key_id, *(retired or {})):
            if not _KEY_ID.fullmatch(kid):
                raise ValueError(f"a key id is 1-32 letters, digits, '-' or '_', not {kid!r}")
        self.key_id = key_id
        self._secrets: dict[str, str] = {**(retired or {}), key_id: secret}
        legacy_root = hashlib.sha256(
            (retired or {}).get(LEGACY_KEY_ID, secret).encode()).digest()
        self._legacy = AESGCM(hmac.new(legacy_root, b"seal", hashlib.sha256).digest())
        if blind_key_id == LEGACY_BLIND_KEY_ID:
            root = hashlib.sha256(secret.encode()).digest()
            self._blind_key = hmac.new(root, b"blind", hashlib.sha256).digest()
        else:
            self._blind_key = _hkdf(secret, b"pii-blind", blind_key_id.encode())
        self._aead = lru_cache(maxsize=4096)(self._derive)

    @classmethod
    def from_settings(cls, settings: Any) -> Sealer:
        """The sealer a service's settings configure (``PII_KEY``, ``PII_KEY_ID``,
        ``PII_RETIRED_KEYS``, ``PII_BLIND_KEY_ID``)."""
        return cls(settings.pii_key, key_id=settings.pii_key_id,
                   retired=settings.pii_retired_keys, blind_key_id=settings.pii_blind_key_id)

    def _derive(self, key_id: str, subject: str) -> AESGCM:
        info = b"pii-seal\x00" + key_id.encode() + b"\x00" + subject.encode()
        return AESGCM(_hkdf(self._secrets[key_id], b"public-accounts/pii", info))

    @staticmethod
    def _aad(key_id: str, subject: str) -> bytes:
        return f"{_FORMAT}:{key_id}:".encode() + b"\x00" + subject.encode()

    def seal(self, value: str, *, subject: str) -> str:
        """``value`` encrypted for ``subject`` under the current key id."""
        if not subject:
            raise ValueError("a sealed value needs its data subject")
        nonce = os.urandom(_NONCE)
        sealed = self._aead(self.key_id, subject).encrypt(
            nonce, value.encode(), self._aad(self.key_id, subject))
        return f"{_FORMAT}:{self.key_id}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, *, subject: str) -> str:
        """The value sealed in ``token`` for ``subject``; :class:`SealError` if it cannot be."""
        if token.startswith(_LEGACY):  # before ADR 0033: one key, bound to no subject
            return self._decrypt(self._legacy, token[len(_LEGACY):], b"pii", LEGACY_KEY_ID)
        fmt, _, rest = token.partition(":")
        key_id, _, body = rest.partition(":")
        if fmt != _FORMAT or not _KEY_ID.fullmatch(key_id) or not body:
            raise SealError("not a sealed value (expected v2:<key id>:<data> or v1:<data>)")
        if key_id not in self._secrets:
            raise SealError(f"sealed under key id {key_id!r}, which is not configured here "
                            f"(PII_KEY_ID is {self.key_id!r}; add it to PII_RETIRED_KEYS)")
        if not subject:
            raise SealError("opening a sealed value needs its data subject")
        return self._decrypt(self._aead(key_id, subject), body,
                             self._aad(key_id, subject), key_id)

    @staticmethod
    def _decrypt(aead: AESGCM, body: str, aad: bytes, key_id: str) -> str:
        try:
            raw = base64.b64decode(body.encode(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise SealError("not a sealed value (its data is not base64)") from None
        if len(raw) < _NONCE + 16:
            raise SealError("not a sealed value (too short)")
        try:
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], aad).decode()
        except InvalidTag:
            raise SealError(f"the value does not open under key id {key_id!r} for this "
                            "subject: sealed for another subject, or the key differs from "
                            "the one that sealed it") from None

    def open_any(self, token: str, subjects: Iterable[str]) -> str:
        """``token`` opened for the first of ``subjects`` it was sealed for (the operations
        tool, which sees a whole event and not which field belongs to whom)."""
        error: SealError | None = None
        for subject in dict.fromkeys(subjects):
            try:
                return self.open(token, subject=subject)
            except SealError as exc:
                error = exc
        raise error or SealError("no data subject to open the value for")

    def blind(self, kind: str, value: str) -> str:
        """A stable keyed digest of ``value`` (upper-cased, trimmed) for equality look-ups."""
        msg = f"{kind}:{value.strip().upper()}".encode()
        return hmac.new(self._blind_key, msg, hashlib.sha256).hexdigest()[:32]


def subjects_in(data: Any) -> list[str]:
    """Every data subject a payload names (its identities' blind indexes, a case id): the
    candidates a value sealed in it may belong to."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("id_number_blind", "case_id") and isinstance(x, str) and x:
                    found.append(x)
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(data)
    return found


def mask_id_number(value: str) -> str:
    """``110101********1234``: region kept, the birth date and serial hidden."""
    v = value.strip()
    return v[:6] + "*" * max(len(v) - 10, 0) + v[-4:] if len(v) > 10 else "*" * len(v)


def mask_phone(value: str) -> str:
    """``138****8000`` (an E.164 ``+86`` prefix is kept in front: ``+86 138****8000``)."""
    v = value.strip()
    prefix = ""
    if v.startswith("+86"):
        prefix, v = "+86 ", v[3:].strip()
    return prefix + (v[:3] + "****" + v[-4:] if len(v) >= 11 else "*" * len(v))


def mask_name(value: str) -> str:
    v = value.strip()
    return v[:1] + "*" * (len(v) - 1) if v else v


def seal_identity(sealer: Sealer, *, organization: bool, number: str, name: str, phone: str,
                  representative_name: str | None = None,
                  representative_id: str | None = None) -> SealedIdentity:
    """Who runs an account, as events carry it (ADR 0008): sealed, masked, and blind-indexed
    from the checked compact number and the E.164 phone, so that every service that seals
    an identity (a registrant, a transferee) yields the same blind indexes. Every value is
    sealed for the identity's ``id_number_blind`` (ADR 0033), which travels beside it."""
    subject = sealer.blind("id_number", number)  # the identity's own blind index

    def seal(value: str) -> str:
        return sealer.seal(value, subject=subject)

    return SealedIdentity(
        id_kind="uscc" if organization else "resident_id",
        id_number_sealed=seal(number), id_number_blind=subject,
        id_number_masked=mask_id_number(number),
        holder_name_sealed=seal(name), holder_name_masked=mask_name(name),
        phone_sealed=seal(phone), phone_blind=sealer.blind("phone", phone),
        phone_masked=mask_phone(phone),
        representative_name_sealed=seal(representative_name) if representative_name else None,
        representative_id_sealed=seal(representative_id) if representative_id else None)


def open_identity(sealer: Sealer, identity: Mapping[str, Any], field: str) -> str:
    """A sealed field of an identity (``SealedIdentity`` as data) opened for its subject."""
    return sealer.open(identity[field], subject=identity["id_number_blind"])
