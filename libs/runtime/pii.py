"""Personal data in events: sealed (encrypted), blind-indexed for look-ups, masked for display.

Events are immutable and published to Kafka, so an identity number or phone number
must never appear in them in clear (docs/decisions/0008-personal-data-in-events.md):
- ``seal``: AES-256-GCM under the platform's data key (``PII_KEY``); a service holding
  the key (verification checking a real name) can ``open`` it.
- ``blind``: a keyed HMAC of the normalised value, so that equal values can be matched
  (account limits, re-registration bans) without storing or publishing the value.
- ``mask_*``: what exports, logs and public pages show.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from libs.events.contracts._common import SealedIdentity

_PREFIX = "v1:"


class Sealer:
    """Seals, opens and blind-indexes personal data with keys derived from one secret."""

    def __init__(self, secret: str) -> None:
        root = hashlib.sha256(secret.encode()).digest()
        # Separate keys per purpose: the blind index key never encrypts and vice versa.
        self._aead = AESGCM(hmac.new(root, b"seal", hashlib.sha256).digest())
        self._blind_key = hmac.new(root, b"blind", hashlib.sha256).digest()

    def seal(self, value: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), b"pii")
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str) -> str:
        if not token.startswith(_PREFIX):
            raise ValueError("not a sealed value")
        raw = base64.urlsafe_b64decode(token[len(_PREFIX):])
        return self._aead.decrypt(raw[:12], raw[12:], b"pii").decode()

    def blind(self, kind: str, value: str) -> str:
        """A stable keyed digest of ``value`` (upper-cased, trimmed) for equality look-ups."""
        msg = f"{kind}:{value.strip().upper()}".encode()
        return hmac.new(self._blind_key, msg, hashlib.sha256).hexdigest()[:32]


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
    an identity (a registrant, a transferee) yields the same blind indexes."""
    return SealedIdentity(
        id_kind="uscc" if organization else "resident_id",
        id_number_sealed=sealer.seal(number), id_number_blind=sealer.blind("id_number", number),
        id_number_masked=mask_id_number(number),
        holder_name_sealed=sealer.seal(name), holder_name_masked=mask_name(name),
        phone_sealed=sealer.seal(phone), phone_blind=sealer.blind("phone", phone),
        phone_masked=mask_phone(phone),
        representative_name_sealed=(sealer.seal(representative_name)
                                    if representative_name else None),
        representative_id_sealed=sealer.seal(representative_id) if representative_id else None)
