"""A value sealed before ADR 0033 (``v1:``: one key, no key id, no subject) stored in an
event still opens where the services open sealed values: the opener reads both formats
(events are immutable, so nothing re-seals them; see ADR 0033)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from libs.events import Envelope
from libs.runtime.pii import Sealer
from libs.runtime.settings import DEV_PII_KEY
from services.enforcement.settings import Settings
from tests.conftest import BACKENDS
from tests.integration.test_enforcement_handlers import T0, deliver
from tests.service_support import Clock, service_dependencies
from tests.unit.test_pii_sealing import legacy_seal

pytestmark = pytest.mark.postgres


@pytest.fixture
async def deps(database_url):
    from services.enforcement import bootstrap as boot
    from services.enforcement.projections import all_projections

    async with service_dependencies(boot, Settings(), database_url, clock=Clock(T0),
                                    projections=all_projections()) as d:
        yield d


def legacy_registration(account_id: str) -> tuple[Envelope, str]:
    """An organization's registration as registration published it before ADR 0033."""
    from services.registration import schemas as reg_schemas
    from services.registration.domain import Account, Verdict
    from tests.registration_support import body

    b = body(entity_type="legal_person")
    app = reg_schemas.application(reg_schemas.RegisterAccount(**b), Sealer(DEV_PII_KEY))
    data = Account.register(account_id, app, Verdict("accept"))[0].to_data()
    uscc = b["identity"]["id_number"]
    identity = data["identity"]
    for field, value in (("id_number_sealed", uscc), ("holder_name_sealed", b["identity"]["name"]),
                         ("phone_sealed", b["identity"]["phone"])):
        identity[field] = legacy_seal(DEV_PII_KEY, value)
    data["contact_sealed"] = legacy_seal(DEV_PII_KEY, b["contact"])
    return Envelope.new(type="registration.AccountRegistrationSubmitted",
                        source="/registration", subject=account_id,
                        stream_id=f"account-{account_id}", time=T0, data=data), uscc


@BACKENDS
async def test_a_stored_v1_sealed_registration_still_opens_in_enforcement(deps):
    account = f"acc-{uuid.uuid4().hex[:6]}"
    env, uscc = legacy_registration(account)
    assert env.data["identity"]["id_number_sealed"].startswith("v1:")
    await deliver(deps, env, "registration.events")  # stored in the inbox, handled
    async with deps.db.connect() as conn:  # the filing's USCC column (A7.1), opened
        opened = await conn.fetchval(text(
            "SELECT uscc FROM enforcement_accounts WHERE account_id = :a"), {"a": account})
    assert opened == uscc
