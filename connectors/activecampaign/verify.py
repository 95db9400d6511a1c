"""ActiveCampaign signs nothing (providers.md §6.1): the webhook URL carries a secret token,
``/webhooks/activecampaign/<token>``, compared in constant time with every configured token so
that a rotation can keep the old URL working until ActiveCampaign's webhook is updated.
"""

from __future__ import annotations

import hmac
from typing import Iterable

from hub.kernel.errors import VerificationError


def verify(token: str | None, tokens: Iterable[str]) -> None:
    """Raise VerificationError unless ``token`` equals one of ``tokens``."""
    if not token:
        raise VerificationError("no token in the URL: ActiveCampaign must post to "
                                "/webhooks/activecampaign/<token>")
    matched = False
    for expected in tokens:  # no early exit: timing does not tell which token nearly matched
        matched |= hmac.compare_digest(token.encode(), expected.encode())
    if not matched:
        raise VerificationError("the URL token matches no HUB_ACTIVECAMPAIGN_WEBHOOK_TOKEN")
