"""What a change request may say, checked by one marshmallow schema (the API, the batch file and the
self-service page all load through it)."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

CHANGES = ("pause", "resume", "cancel", "change_plan", "change_quantity")


class _Effective(fields.Field):
    """``now``, ``period_end`` or a date (YYYY-MM-DD)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str | date:
        if value in ("now", "period_end"):
            return str(value)
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValidationError("must be now, period_end or a date YYYY-MM-DD") from None


class ChangeRequest(Schema):
    change = fields.String(required=True, validate=validate.OneOf(CHANGES))
    effective = _Effective(load_default="now")
    plan = fields.String(load_default=None, validate=validate.Length(min=1, max=255))
    #: the new plan's charge per unit and period in minor units, when the hub has not seen that plan yet
    plan_amount = fields.Integer(load_default=None, validate=validate.Range(min=0, max=10**12))
    quantity = fields.Integer(load_default=None, validate=validate.Range(min=1, max=1_000_000))
    reason = fields.String(load_default=None, validate=validate.Length(max=500))
    idempotency_key = fields.String(load_default=None, validate=validate.Length(min=1, max=200))

    @validates_schema
    def _needs(self, data: dict[str, Any], **_: Any) -> None:
        if data["change"] == "change_plan" and not data.get("plan"):
            raise ValidationError("required for change_plan", "plan")
        if data["change"] == "change_quantity" and data.get("quantity") is None:
            raise ValidationError("required for change_quantity", "quantity")
        if data["change"] == "resume" and data["effective"] != "now":
            raise ValidationError("a resume takes effect now", "effective")
        if isinstance(data["effective"], date) and data["change"] not in ("pause", "cancel"):
            raise ValidationError("a date applies to pause and cancel only (use now or period_end)", "effective")


def problems(error: ValidationError) -> str:
    """One line naming every bad field: ``plan: required for change_plan; quantity: ...``."""
    messages = error.normalized_messages()
    return "; ".join(f"{field}: {' '.join(m if isinstance(m, list) else [str(m)])}"
                     for field, m in sorted(messages.items()))
