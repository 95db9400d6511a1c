"""Klaviyo outbound API (JSON:API). Every call carries ``Authorization: Klaviyo-API-Key``,
a ``revision`` header and ``application/vnd.api+json`` (providers.md §5.2).

List membership needs Klaviyo profile ids, not e-mails: ids come from the ``profile-import``
answer (``upsert_profile``) or a ``GET /api/profiles?filter=equals(...)`` lookup, and are cached
per account for a day in the client's shared id cache (Redis when delivery installs it).
"""

from __future__ import annotations

import hashlib
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connectors.base import ActionContext, ActionSpec, BatchSpec, ItemOutcome, OnRepeat
from connectors.http import ID_TTL, ApiClient, LocalCache, Outcome
from hub.kernel.errors import ActionError, PermanentError
from hub.kernel.settings import Settings
from hub.kernel.values import to_major

JSONAPI = "application/vnd.api+json"
IDENTIFIERS = ("email", "phone_number", "external_id")
#: the external-id provider name under which the hub keeps the merchant's own id for a subscriber
MERCHANT_ID = "merchant"

#: Klaviyo's per-endpoint tiers (providers.md §5.2), as the 1-second burst window. The steady
#: per-minute windows are lower: XL 3500/m, L 700/m, M 150/m; the delivery limiter enforces the burst.
# Klaviyo counts a burst (1 s) and a steady (1 min) window per endpoint tier; both are enforced.
RATE_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "events": ((350, 1.0), (3500, 60.0)),        # XL: POST /api/events
    "profiles": ((75, 1.0), (750, 60.0)),        # L: POST /api/profile-import
    "subscriptions": ((75, 1.0), (750, 60.0)),   # L: POST /api/profile-subscription-bulk-create-jobs
    "lists": ((10, 1.0), (150, 60.0)),           # M: /api/lists/{id}/relationships/profiles (and GET /api/profiles)
}


class KlaviyoClient(ApiClient):
    connector = "klaviyo"

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "KlaviyoClient":
        key = settings["HUB_KLAVIYO_API_KEY"] or ""
        client = cls(
            settings["HUB_KLAVIYO_API_URL"],
            {
                "Authorization": f"Klaviyo-API-Key {key}",
                "revision": settings["HUB_KLAVIYO_REVISION"],
                "Content-Type": JSONAPI,
                "Accept": JSONAPI,
            },
            dry_run=dry_run,
            timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"],
        )
        # profile ids are per account: the cache is keyed by a digest of the key, never the key
        client.account = client.base_url + "#" + hashlib.sha256(key.encode()).hexdigest()[:16]
        return client

    account: str = ""


PROFILE_IDS = LocalCache()


def _cache(client: ApiClient) -> Any:
    return getattr(client, "cache", None) or PROFILE_IDS


def _cache_key(client: ApiClient, ident: str) -> str:
    return f"klaviyo:profile:{getattr(client, 'account', '') or client.base_url}:{ident}"


# -- schemas ---------------------------------------------------------------------------------
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


class UpsertProfileParams(Schema):
    """Attributes to write. A key given as null clears that field; a key left out is unchanged."""

    email = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    organization = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    location = fields.Dict(allow_none=True)
    properties = fields.Dict(allow_none=True)


class SubscribeParams(Schema):
    channels = fields.List(fields.String(validate=validate.OneOf(["email", "sms"])), load_default=lambda: ["email"],
                           validate=validate.Length(min=1))
    list_id = fields.String(allow_none=True, load_default=None)
    profile = fields.Nested(ProfileSchema, load_default=dict)


class ListMembershipParams(Schema):
    list_id = fields.String(required=True)
    profile = fields.Nested(ProfileSchema, load_default=dict)


# -- helpers ---------------------------------------------------------------------------------
def own_ids(ctx: ActionContext) -> dict[str, str]:
    """Klaviyo's profile id (``id``: the subscriber's klaviyo external id, learnt from Klaviyo's
    webhooks) and the merchant's own id (``external_id``: Klaviyo defines it as the id in the
    merchant's system, so never Klaviyo's own; the subscriber's ``merchant`` external id, or none)."""
    ext = ctx.subscriber.get("external_ids") or {}
    return {k: str(v) for k, v in {"id": ext.get("klaviyo"), "external_id": ext.get(MERCHANT_ID)}.items() if v}


def profile_attributes(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """The profile to attach: explicit params first, else the subscriber's current identifiers
    (``id``, when known, is Klaviyo's profile id: callers send it beside the attributes)."""
    profile = {k: v for k, v in (params.get("profile") or {}).items() if v}
    if not profile:
        sub = ctx.subscriber
        profile = {k: v for k, v in {"email": sub.get("email"), "phone_number": sub.get("phone"),
                                     **own_ids(ctx)}.items() if v}
    if not ({"email", "phone_number", "external_id", "id"} & profile.keys()):
        raise PermanentError("Klaviyo needs an email, phone number or external id for the profile")
    return profile


def profile_resource(profile: dict[str, Any]) -> dict[str, Any]:
    """A JSON:API profile resource: Klaviyo's ``id`` beside the attributes, never inside them."""
    attributes = {k: v for k, v in profile.items() if k != "id"}
    return {"type": "profile", **({"id": profile["id"]} if profile.get("id") else {}), "attributes": attributes}


def _identifiers(params: dict[str, Any], ctx: ActionContext) -> dict[str, str]:
    profile = profile_attributes(params, ctx)
    return {k: v for k, v in profile.items() if k in (*IDENTIFIERS, "id")}


def _cache_keys(ids: dict[str, str]) -> list[str]:
    return [f"{k}:{ids[k].lower() if k == 'email' else ids[k]}" for k in IDENTIFIERS if ids.get(k)]


def _remember(client: ApiClient, ids: dict[str, Any], profile_id: str | None) -> None:
    if profile_id:
        for key in _cache_keys(ids):
            _cache(client).set(_cache_key(client, key), profile_id, ID_TTL)


def _forget(client: ApiClient, ids: dict[str, Any]) -> None:
    for key in _cache_keys(ids):
        _cache(client).set(_cache_key(client, key), "", 1)


def _single(batch: BatchSpec, client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """Run a batchable action for one item; the item's own failure is raised."""
    outcome, items = batch.run(client, [(params, ctx)])
    if items and items[0].error is not None:
        raise items[0].error
    return outcome


# -- actions ---------------------------------------------------------------------------------
def track_event(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/events`` with ``unique_id`` = the action key, so a repeat is dropped by Klaviyo."""
    attributes: dict[str, Any] = {
        "properties": params.get("properties") or {},
        "metric": {"data": {"type": "metric", "attributes": {"name": params["metric"]}}},
        "profile": {"data": profile_resource(profile_attributes(params, ctx))},
        "unique_id": ctx.key,
    }
    if params.get("time"):
        attributes["time"] = params["time"]
    if params.get("value"):
        attributes["value"] = to_major(params["value"])
        attributes["value_currency"] = params["value"]["currency"].upper()
    return client.request("POST", "/api/events", json_body={"data": {"type": "event", "attributes": attributes}})


def upsert_profile(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/profile-import``: create or update by identifier. Keys present in ``params`` are
    sent as given (null clears the field in Klaviyo); keys left out are not sent, so unchanged."""
    attributes = dict(params)
    ids = own_ids(ctx)
    if not any(attributes.get(k) for k in IDENTIFIERS):
        sub = ctx.subscriber
        fallback = {"email": sub.get("email"), "phone_number": sub.get("phone"), "external_id": ids.get("external_id")}
        attributes.update({k: v for k, v in fallback.items() if v and k not in attributes})
    if not any(attributes.get(k) for k in IDENTIFIERS) and not ids.get("id"):
        raise PermanentError("Klaviyo needs an email, phone number or external id for the profile")
    outcome = client.request("POST", "/api/profile-import",
                             json_body={"data": profile_resource({**attributes, "id": ids.get("id")})})
    _remember(client, attributes, _data_id(outcome.data))
    return outcome


def _data_id(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        return data["data"].get("id")
    return None


def _subscription_profile(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    ids = _identifiers(params, ctx)
    subscriptions: dict[str, Any] = {}
    for channel in params.get("channels") or ["email"]:
        needed = "email" if channel == "email" else "phone_number"
        if not ids.get(needed):
            raise PermanentError(f"subscribing to {channel} needs the profile's {needed}")
        subscriptions[channel] = {"marketing": {"consent": "SUBSCRIBED"}}
    attributes = {k: v for k, v in ids.items() if k != "id"}
    attributes["subscriptions"] = subscriptions
    return {"type": "profile", "attributes": attributes}


def subscribe_batch(client: ApiClient, items: list[tuple[dict[str, Any], ActionContext]]
                    ) -> tuple[Outcome, list[ItemOutcome]]:
    """One bulk subscription job (<= 1000 profiles, one list and channel set): explicit consent
    ``SUBSCRIBED`` per channel. The job runs asynchronously at Klaviyo, so 202 counts as done."""
    profiles: list[dict[str, Any]] = []
    results: list[ItemOutcome | None] = []
    for params, ctx in items:
        try:
            profiles.append(_subscription_profile(params, ctx))
            results.append(None)
        except PermanentError as exc:
            results.append(ItemOutcome(ok=False, error=exc))
    job: dict[str, Any] = {"type": "profile-subscription-bulk-create-job",
                           "attributes": {"custom_source": "subscriber-hub", "historical_import": False,
                                          "profiles": {"data": profiles}}}
    list_id = items[0][0].get("list_id")
    if list_id:
        job["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    if not profiles:
        return Outcome(status_code=None, request={}), [r for r in results if r is not None]
    outcome = client.request("POST", "/api/profile-subscription-bulk-create-jobs", json_body={"data": job})
    return outcome, [r or ItemOutcome(ok=True) for r in results]


def _subscribe_group(params: dict[str, Any]) -> str:
    return f"{params.get('list_id') or ''}|{','.join(sorted(params.get('channels') or ['email']))}"


def _lookup_filter(ids: dict[str, str]) -> str:
    for key in IDENTIFIERS:
        value = ids.get(key)
        if value:
            if '"' in value or "\\" in value:
                raise PermanentError(f"cannot look up a Klaviyo profile by a {key} containing quotes")
            return f'equals({key},"{value}")'
    raise PermanentError("Klaviyo needs an email, phone number or external id for the profile")


def resolve_profile_id(client: ApiClient, params: dict[str, Any], ctx: ActionContext, *, create: bool
                       ) -> str | None:
    """The Klaviyo profile id: given, cached, looked up by identifier, or (``create``) created."""
    ids = _identifiers(params, ctx)
    if ids.get("id"):
        return ids["id"]
    for key in _cache_keys(ids):
        cached = _cache(client).get(_cache_key(client, key))
        if cached:
            return cached
    if client.dry_run:
        return f"<profile id of {_lookup_filter(ids)}>"
    found = client.request("GET", "/api/profiles", params={"filter": _lookup_filter(ids),
                                                           "fields[profile]": ",".join(IDENTIFIERS)})
    data = (found.data or {}).get("data") if isinstance(found.data, dict) else None
    profile_id = data[0].get("id") if data else None
    if profile_id is None and create:
        created = client.request("POST", "/api/profile-import",
                                 json_body={"data": {"type": "profile", "attributes": {
                                     k: v for k, v in ids.items() if k != "id"}}})
        profile_id = _data_id(created.data)
    _remember(client, ids, profile_id)
    return profile_id


def _membership_batch(method: str):  # type: ignore[no-untyped-def]
    adding = method == "POST"

    def run(client: ApiClient, items: list[tuple[dict[str, Any], ActionContext]]
            ) -> tuple[Outcome, list[ItemOutcome]]:
        """Profiles added to (POST) or removed from (DELETE) one list in one call (<= 1000).
        Adding creates a missing profile; removing a profile Klaviyo does not know is a no-op."""
        profile_ids: list[str | None] = []
        results: list[ItemOutcome | None] = []
        for params, ctx in items:
            try:
                profile_id = resolve_profile_id(client, params, ctx, create=adding)
            except ActionError as exc:
                profile_ids.append(None)
                results.append(ItemOutcome(ok=False, error=exc))
                continue
            profile_ids.append(profile_id)
            results.append(None if profile_id else ItemOutcome(ok=True, response="no such profile"))
        to_send = list(dict.fromkeys(pid for pid, r in zip(profile_ids, results) if r is None and pid))
        if not to_send:
            return Outcome(status_code=None, request={}, dry_run=client.dry_run), \
                [r or ItemOutcome(ok=True) for r in results]
        list_id = items[0][0]["list_id"]
        try:
            outcome = client.request(method, f"/api/lists/{list_id}/relationships/profiles",
                                     json_body={"data": [{"type": "profile", "id": pid} for pid in to_send]})
        except PermanentError as exc:
            if exc.status in (400, 404):  # a cached id may be stale (merged or deleted profile)
                for params, ctx in items:
                    try:
                        _forget(client, _identifiers(params, ctx))
                    except PermanentError:
                        pass
            raise
        return outcome, [r or ItemOutcome(ok=True) for r in results]

    return run


SUBSCRIBE_BATCH = BatchSpec(1000, subscribe_batch, _subscribe_group)
ADD_BATCH = BatchSpec(1000, _membership_batch("POST"), lambda params: str(params.get("list_id")))
REMOVE_BATCH = BatchSpec(1000, _membership_batch("DELETE"), lambda params: str(params.get("list_id")))


def subscribe(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    return _single(SUBSCRIBE_BATCH, client, params, ctx)


def add_to_list(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    return _single(ADD_BATCH, client, params, ctx)


def remove_from_list(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    return _single(REMOVE_BATCH, client, params, ctx)


ACTIONS: dict[str, ActionSpec] = {
    "track_event": ActionSpec("track_event", TrackEventParams, track_event,
                              "Record a metric event on a profile (drives Klaviyo flows).", bucket="events",
                              on_repeat=OnRepeat("single", "`unique_id` = the action key: Klaviyo drops a repeat")),
    "upsert_profile": ActionSpec("upsert_profile", UpsertProfileParams, upsert_profile,
                                 "Create or update a profile (null clears a field, omitted is unchanged).",
                                 bucket="profiles"),
    "subscribe": ActionSpec("subscribe", SubscribeParams, subscribe,
                            "Record marketing consent (SUBSCRIBED) per channel, optionally into a list.",
                            bucket="subscriptions", batch=SUBSCRIBE_BATCH),
    "add_to_list": ActionSpec("add_to_list", ListMembershipParams, add_to_list,
                              "Add a profile to a list without changing consent.", bucket="lists", batch=ADD_BATCH),
    "remove_from_list": ActionSpec("remove_from_list", ListMembershipParams, remove_from_list,
                                   "Remove a profile from a list.", bucket="lists", batch=REMOVE_BATCH),
}


# -- reads -----------------------------------------------------------------------------------
def list_members(client: ApiClient, list_id: str, page_size: int = 100) -> set[str] | None:
    """E-mails of the profiles in a list (``GET /api/lists/{id}/profiles``, JSON:API pages followed
    through ``links.next``, which carries ``page[cursor]``); None in dry run (unknown). Profiles
    without an e-mail (phone-only) are not counted."""
    if client.dry_run:
        return None
    emails: set[str] = set()
    path: str | None = f"/api/lists/{list_id}/profiles"
    params: dict[str, Any] | None = {"fields[profile]": "email", "page[size]": page_size}
    while path:
        body = client.request("GET", path, params=params).data or {}
        for profile in body.get("data") or []:
            email = (profile.get("attributes") or {}).get("email")
            if email:
                emails.add(str(email).strip().lower())
        path, params = (body.get("links") or {}).get("next"), None  # the next link keeps the query
    return emails


def members(client: ApiClient, target: str) -> set[str] | None:
    """The Connector's ``members``: ``klaviyo:list:<id>`` is readable, nothing else."""
    tool, kind, ref = target.split(":", 2)
    return list_members(client, ref) if (tool, kind) == ("klaviyo", "list") else None
