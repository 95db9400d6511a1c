"""The planner's building blocks: outbox keys stay what they were, and the scope shared by every
condition and template of one event keeps them independent of each other."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from hub.kernel.events import CanonicalEvent
from hub.rules.expressions import Expressions
from hub.rules.model import _KEY_NAMESPACE, action_key
from hub.rules.planner import context


def test_outbox_keys_are_the_uuid5_keys_already_stored():
    # rows planned by earlier versions must keep matching when an event is planned again
    for parts in [("renewal-reminder", "sub_1", "2027-01-10T10:00:00Z", "30d", 0),
                  ("welcome", "subscriber:42", "7f1c", "day-2#17", 3), ("é✓", "", "", "", 11)]:
        name = "\x1f".join([*map(str, parts[:4]), str(parts[4])])
        assert action_key(*parts) == str(uuid.uuid5(_KEY_NAMESPACE, name))


def _scope():
    event = CanonicalEvent(type="payment.failed", time="2026-01-01T00:00:00Z", provider="stripe",
                           providereventid="evt_1", providertype="invoice.payment_failed",
                           data={"invoice": {"id": "in_1", "number": "A-1"}, "payment": {"attempt": 2}})
    return context(event, {"email": "ann@example.com"}, datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_conditions_and_templates_on_one_event_do_not_see_each_others_names():
    exprs = Expressions()
    scope = _scope()
    first = exprs.compile_value({"note": "{% set who = subscriber.email %}to {{ who }}"})
    second = exprs.compile_value({"note": "to {{ who }}", "invoice": "{{ invoice.number }}"})
    assert first(scope) == {"note": "to ann@example.com"}
    assert second(scope) == {"note": "to ", "invoice": "A-1"}
    failing = exprs.compile_condition("payment.attempt > 'x'")  # int > str raises
    with pytest.raises(TypeError):
        failing(scope)
    assert exprs.compile_condition("invoice.missing")(scope) is None  # not the failed one's result
    assert exprs.compile_condition("payment.attempt >= 2 and subscriber.email")(scope) == "ann@example.com"


def test_each_step_sees_its_own_step():
    exprs = Expressions()
    scope = _scope()
    render = exprs.compile_value({"days": "{{ step.days }}", "text": "step {{ step.name }} of {{ invoice.id }}"})
    assert render(scope) == {"text": "step  of in_1"}  # no step outside a schedule: left out / empty
    assert render(scope.child(step={"name": "3d", "days": 3})) == {"days": 3, "text": "step 3d of in_1"}
    assert render(scope.child(step={"name": "7d", "days": 7})) == {"days": 7, "text": "step 7d of in_1"}
