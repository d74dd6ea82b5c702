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

``v1:`` values (before ADR 0033: one key, no subject) are no longer opened by the opener:
events are read through :class:`LegacySealedValues`, a value upcaster each service installs
in its event registry (:func:`install_sealer`), which re-seals every stored ``v1:`` value
as ``v2:`` for its subject, the same way at every read. Nothing seals ``v1:`` any more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from libs.events.contracts._common import SealedIdentity

if TYPE_CHECKING:
    from libs.events import Envelope, EventRegistry

_LEGACY = "v1:"
_FORMAT = "v2"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_NONCE = 12
LEGACY_KEY_ID = "v1"  # the retired key entry that opens ``v1:`` values, if not PII_KEY
LEGACY_BLIND_KEY_ID = "v1"  # the blind index key as derived before ADR 0033 (kept)


class SealError(ValueError):
    """A sealed value that cannot be opened here: malformed, sealed under a key id this
    service does not hold, or sealed for another subject or under another key."""


_SEAL_SALT = b"public-accounts/pii"


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
        # the secret ``v1:`` values were sealed with: only LegacySealedValues uses it
        self._legacy_secret = (retired or {}).get(LEGACY_KEY_ID, secret)
        if blind_key_id == LEGACY_BLIND_KEY_ID:
            root = hashlib.sha256(secret.encode()).digest()
            blind_key = hmac.new(root, b"blind", hashlib.sha256).digest()
        else:
            blind_key = _hkdf(secret, b"pii-blind", blind_key_id.encode())
        # keyed once; blind() hashes on a copy
        self._blind_mac = hmac.new(blind_key, digestmod=hashlib.sha256)
        # HKDF is extract (secret and salt: once per key id) then expand (per subject):
        # a subject's key is the expand step alone, the same bytes as the whole HKDF.
        self._prks = {kid: HKDF.extract(hashes.SHA256(), _SEAL_SALT, s.encode())
                      for kid, s in self._secrets.items()}
        self._aead = lru_cache(maxsize=4096)(self._derive)

    @classmethod
    def from_settings(cls, settings: Any) -> Sealer:
        """The sealer a service's settings configure (``PII_KEY``, ``PII_KEY_ID``,
        ``PII_RETIRED_KEYS``, ``PII_BLIND_KEY_ID``)."""
        return cls(settings.pii_key, key_id=settings.pii_key_id,
                   retired=settings.pii_retired_keys, blind_key_id=settings.pii_blind_key_id)

    def _derive(self, key_id: str, subject: str) -> AESGCM:
        info = b"pii-seal\x00" + key_id.encode() + b"\x00" + subject.encode()
        return AESGCM(HKDFExpand(hashes.SHA256(), 32, info).derive(self._prks[key_id]))

    @staticmethod
    def _aad(key_id: str, subject: str) -> bytes:
        return f"{_FORMAT}:{key_id}:".encode() + b"\x00" + subject.encode()

    def seal(self, value: str, *, subject: str) -> str:
        """``value`` encrypted for ``subject`` under the current key id."""
        return self._sealing(subject)(value, os.urandom(_NONCE))

    def sealing_for(self, subject: str) -> Callable[[str], str]:
        """:meth:`seal` for one subject, its key and associated data made once: for the
        several values of one identity."""
        sealing = self._sealing(subject)
        return lambda value: sealing(value, os.urandom(_NONCE))

    def _sealing(self, subject: str) -> Callable[[str, bytes], str]:
        """Sealing for ``subject`` with a given nonce (random in :meth:`seal`; the legacy
        upcaster's is deterministic)."""
        if not subject:
            raise ValueError("a sealed value needs its data subject")
        encrypt = self._aead(self.key_id, subject).encrypt
        aad, head = self._aad(self.key_id, subject), f"{_FORMAT}:{self.key_id}:"

        def seal(value: str, nonce: bytes) -> str:
            sealed = encrypt(nonce, value.encode(), aad)
            return head + base64.urlsafe_b64encode(nonce + sealed).decode()

        return seal

    def open(self, token: str, *, subject: str) -> str:
        """The value sealed in ``token`` for ``subject``; :class:`SealError` if it cannot be.

        Only ``v2:`` values: a ``v1:`` value reaches a service re-sealed as ``v2:`` for its
        subject by :class:`LegacySealedValues` when the event is read, never as it was
        stored, so one here is refused (it did not come through the upcaster)."""
        if token.startswith(_LEGACY):
            raise SealError(
                "a v1: value (sealed before ADR 0033, bound to no subject) is not opened "
                "directly: it must come through the upcaster (LegacySealedValues, installed "
                "in the event registry by install_sealer), which re-seals it as v2: for its "
                "subject when the event is read. This one did not: read the event through "
                "the registry, or check that PII_KEY (or PII_RETIRED_KEYS['v1']) is the "
                "secret that sealed it")
        fmt, _, rest = token.partition(":")
        key_id, _, body = rest.partition(":")
        if fmt != _FORMAT or not _KEY_ID.fullmatch(key_id) or not body:
            raise SealError("not a sealed value (expected v2:<key id>:<data>)")
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
        mac = self._blind_mac.copy()  # keyed once: a copy skips the key's two blocks
        mac.update(f"{kind}:{value.strip().upper()}".encode())
        return mac.hexdigest()[:32]


class LegacySealedValues:
    """The value upcaster (``EventRegistry.add_value_upcaster``) through which every event
    is read: each ``v1:`` value it holds comes out re-sealed as ``v2:<current key id>:...``
    for its data subject (ADR 0033), so that the opener only ever sees ``v2:``.

    Built from a :class:`Sealer`'s keys: ``v1:`` values open with the key derived as it
    was before ADR 0033 (from ``PII_KEY``, or from the retired entry ``v1`` once the secret
    has changed) and are sealed again under the current key id. The stored event is not
    changed: the upcast happens at every read.

    **Which fields.** String values of fields named ``*_sealed`` that start with ``v1:``
    (every sealed field of the contracts is named so; a free text that happens to start
    with ``v1:`` is left alone).

    **Which subject** (:func:`legacy_subject`): the subject the services open the value
    for, as they would have sealed it under ADR 0033.

    **Deterministic.** The same ``v1:`` value gives the same ``v2:`` value at every read,
    in every service with the same keys: its nonce is not random but the first 96 bits of
    HMAC-SHA-256, under a secret derived (HKDF) from the current key id's secret, of
    (key id, subject, the ``v1:`` value). This is safe for AES-GCM, whose one requirement
    is that a (key, nonce) pair never encrypts two different messages: the key is the
    (key id, subject) key and the nonce is a function of the ``v1:`` value, which opens to
    exactly one plaintext (GCM authenticates it), so a (key, nonce) pair only ever seals
    that one plaintext, with the same associated data: the same ciphertext, not a second
    message. Two different ``v1:`` values (even of the same plaintext: each had a random
    nonce) give unrelated nonces, colliding no more often than random ones (96-bit HMAC
    output). What the determinism shows, that two reads hold the same value, the stored
    ``v1:`` value already showed. The nonce secret is keyed, so nobody without the keys
    can compute it in advance (and nobody with only the events learns anything from it).

    **What cannot be upcast** (a ``v1:`` value that does not open with the legacy key:
    another secret sealed it, or it is damaged) is left as it is, and the read goes on: the
    opener refuses it with a :class:`SealError` saying so if a service tries to open it.
    """

    name = "pii.legacy-sealed-values"
    marker = '"v1:'  # in the stored JSON text of every payload with a v1: string value

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        root = hashlib.sha256(sealer._legacy_secret.encode()).digest()
        self._legacy = AESGCM(hmac.new(root, b"seal", hashlib.sha256).digest())
        self._nonce_key = _hkdf(sealer._secrets[sealer.key_id], _SEAL_SALT,
                                b"pii-v1-upcast-nonce\x00" + sealer.key_id.encode())

    def install(self, registry: EventRegistry) -> LegacySealedValues:
        """Read every event of ``registry`` through this upcaster (one per registry: a
        second install replaces the first)."""
        registry.add_value_upcaster(self.name, self, marker=self.marker)
        return self

    def reseal(self, token: str, *, subject: str) -> str:
        """The ``v2:`` form of the ``v1:`` value ``token`` for ``subject`` (always the
        same); :class:`SealError` if it does not open with the legacy key."""
        if not token.startswith(_LEGACY):
            raise SealError("not a v1: value")
        if not subject:
            raise SealError("re-sealing a v1: value needs its data subject")
        value = Sealer._decrypt(self._legacy, token[len(_LEGACY):], b"pii", LEGACY_KEY_ID)
        key_id = self.sealer.key_id
        nonce = hmac.new(self._nonce_key, key_id.encode() + b"\x00" + subject.encode()
                         + b"\x00" + token.encode(), hashlib.sha256).digest()[:_NONCE]
        return self.sealer._sealing(subject)(value, nonce)

    def __call__(self, envelope: Envelope) -> Envelope:
        data = envelope.data
        if not isinstance(data, dict):
            return envelope
        upcast = self._walk(data, envelope.subject)
        return envelope if upcast is data else envelope._replace(data=upcast)

    def _walk(self, node: Any, fallback: str) -> Any:
        """``node`` with its ``v1:`` values re-sealed; ``node`` itself if it has none."""
        if isinstance(node, list):
            items = [self._walk(x, fallback) for x in node]
            return node if all(a is b for a, b in zip(items, node, strict=True)) else items
        if not isinstance(node, dict):
            return node
        changed: dict[str, Any] = {}
        for k, v in node.items():
            if isinstance(v, str):
                if v.startswith(_LEGACY) and isinstance(k, str) and k.endswith("_sealed"):
                    try:
                        changed[k] = self.reseal(v, subject=legacy_subject(node, k, fallback))
                    except SealError:
                        pass  # left as stored: the opener will say it cannot open it
            elif isinstance(v, dict | list):
                w = self._walk(v, fallback)
                if w is not v:
                    changed[k] = w
        return {**node, **changed} if changed else node


def legacy_subject(node: Mapping[str, Any], field: str, event_subject: str) -> str:
    """The data subject of the ``v1:`` value in ``node[field]`` (ADR 0033), in this order:

    1. inside an identity (``SealedIdentity``: a registrant, transferee, new owner, grantee),
       the identity's own ``id_number_blind`` beside it;
    2. a contact given with an identity (``contact_sealed`` beside ``identity``,
       ``<party>_contact_sealed`` beside ``<party>``: ``transferee_contact_sealed``), that
       identity's ``id_number_blind``;
    3. a value beside a ``case_id`` (a complaint's contact: a member of the public), the
       case id;
    4. otherwise (no contract has such a value today) the event's subject (its account, or
       its stream): fixed, documented and known to whoever reads the event, so that the
       value stays readable (``acctctl streams show --reveal`` tries it too).
    """
    own = node.get("id_number_blind")
    if isinstance(own, str) and own:
        return own
    if field.endswith("contact_sealed"):
        party = field.removesuffix("contact_sealed").rstrip("_") or "identity"
        identity = node.get(party)
        if isinstance(identity, Mapping):
            blind = identity.get("id_number_blind")
            if isinstance(blind, str) and blind:
                return blind
    case_id = node.get("case_id")
    if isinstance(case_id, str) and case_id:
        return case_id
    return event_subject


def install_sealer(settings: Any, registry: EventRegistry) -> Sealer:
    """The service's :class:`Sealer` (its settings' keys), with ``registry`` reading every
    event through :class:`LegacySealedValues` built from the same keys: the one call where
    a service's sealer and its event registry meet (each service's wiring, and so the
    operations tool, which reads services through their ``bootstrap()``)."""
    sealer = Sealer.from_settings(settings)
    LegacySealedValues(sealer).install(registry)
    return sealer


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
    seal = sealer.sealing_for(subject)
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
