"""Klaviyo outbound API (JSON:API). Every call carries ``Authorization: Klaviyo-API-Key``,
a ``revision`` header and ``application/vnd.api+json`` (providers.md §5.2)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from hub.config import Settings
from hub.errors import PermanentError
from hub.values import to_major

from ..base import ActionContext, ActionSpec
from ..http import ApiClient, Outcome

JSONAPI = "application/vnd.api+json"


class KlaviyoClient(ApiClient):
    connector = "klaviyo"

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "KlaviyoClient":
        return cls(
            settings["HUB_KLAVIYO_API_URL"],
            {
                "Authorization": f"Klaviyo-API-Key {settings['HUB_KLAVIYO_API_KEY'] or ''}",
                "revision": settings["HUB_KLAVIYO_REVISION"],
                "Content-Type": JSONAPI,
                "Accept": JSONAPI,
            },
            dry_run=dry_run,
            timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"],
        )


class ProfileSchema(Schema):
    email = fields.String()
    phone_number = fields.String()
    external_id = fields.String()
    id = fields.String()
    first_name = fields.String()
    last_name = fields.String()


class MoneySchema(Schema):
    minor = fields.Integer(required=True)
    currency = fields.String(required=True)


class TrackEventParams(Schema):
    metric = fields.String(required=True)
    properties = fields.Dict(load_default=dict)
    profile = fields.Nested(ProfileSchema, load_default=dict)
    value = fields.Nested(MoneySchema, allow_none=True, load_default=None)
    time = fields.String(allow_none=True, load_default=None)

    @validates_schema
    def _small_enough(self, data: dict[str, Any], **_: Any) -> None:
        if len(data.get("properties") or {}) > 400:
            raise ValidationError("Klaviyo accepts at most 400 properties", "properties")


def profile_attributes(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """The profile to attach: explicit params first, else the subscriber's current identifiers."""
    profile = {k: v for k, v in (params.get("profile") or {}).items() if v}
    if not profile:
        sub = ctx.subscriber
        profile = {k: v for k, v in {"email": sub.get("email"), "phone_number": sub.get("phone"),
                                     "external_id": sub.get("external_id")}.items() if v}
    if not ({"email", "phone_number", "external_id", "id"} & profile.keys()):
        raise PermanentError("Klaviyo needs an email, phone number or external id for the profile")
    return profile


def track_event(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/events`` with ``unique_id`` = the action key, so a repeat is dropped by Klaviyo."""
    attributes: dict[str, Any] = {
        "properties": params.get("properties") or {},
        "metric": {"data": {"type": "metric", "attributes": {"name": params["metric"]}}},
        "profile": {"data": {"type": "profile", "attributes": profile_attributes(params, ctx)}},
        "unique_id": ctx.key,
    }
    if params.get("time"):
        attributes["time"] = params["time"]
    if params.get("value"):
        attributes["value"] = to_major(params["value"])
        attributes["value_currency"] = params["value"]["currency"].upper()
    return client.request("POST", "/api/events", json_body={"data": {"type": "event", "attributes": attributes}})


ACTIONS: dict[str, ActionSpec] = {
    "track_event": ActionSpec("track_event", TrackEventParams, track_event,
                              "Record a metric event on a profile (drives Klaviyo flows)."),
}
