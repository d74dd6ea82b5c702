"""Registration's events -> verification (choreography, no calls).

Each event is handled in the consumer's transaction together with its inbox record, so a
redelivery changes nothing; a registration seen twice under another event id, or a change
for an account never verified here, is logged and skipped.
"""

from __future__ import annotations

from libs.events import Envelope, each, events_topic
from libs.events.db import Tx
from libs.runtime.service import Subscription

from .handlers import Deps, when_profile_change_submitted, when_registration_submitted

RULES = {
    "registration.AccountRegistrationSubmitted": when_registration_submitted,
    "registration.ProfileChangeSubmitted": when_profile_change_submitted,
}


def subscription(deps: Deps) -> Subscription:
    async def one(tx: Tx, e: Envelope) -> None:
        rule = RULES.get(e.type)
        if rule is not None:
            await rule(deps, tx, e)

    return Subscription(name="verification-inbound", topics=[events_topic("registration")],
                        handler=each(one), event_types=frozenset(RULES))
