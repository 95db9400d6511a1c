"""ActiveCampaign outbound API v3 (providers.md §6.2) and Event Tracking.

Every API call carries ``Api-Token``; the account allows 5 requests per second, shared by every
key and integration (one ``default`` bucket; lookups count too). Contact ids are resolved from the
action's parameters, the subscriber's stored ActiveCampaign id, the shared cache, a lookup by
e-mail, or (for actions that add something) a ``/contact/sync`` upsert. Tag ids are looked up
with ``/tags?search=`` or created, and cached. Event tracking is a separate form-encoded endpoint
that takes ``actid`` and the event ``key`` instead of the token.

In dry run nothing is sent, so ids cannot be resolved: the recorded request names them as
``<contact a@example.com>`` / ``<tag vip>``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connectors.base import ActionContext, ActionSpec, OnRepeat
from connectors.http import ApiClient, Outcome
from hub.kernel.errors import PermanentError
from hub.kernel.settings import Settings
from hub.kernel.values import parse_time

API = "/api/3"
RATE_LIMITS: dict[str, tuple[int, float]] = {"default": (5, 1.0)}  # per account, every key shares it
CACHE_TTL = 7 * 86400


class ActiveCampaignClient(ApiClient):
    connector = "activecampaign"
    secret_fields = frozenset({"key"})  # the event key in tracking forms

    def __init__(self, *args: Any, track_url: str, account_id: str | None, event_key: str | None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.track_url = track_url
        self.account_id = account_id
        self.event_key = event_key

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "ActiveCampaignClient":
        return cls(settings["HUB_ACTIVECAMPAIGN_API_URL"],
                   {"Api-Token": settings["HUB_ACTIVECAMPAIGN_API_TOKEN"] or "", "Accept": "application/json"},
                   dry_run=dry_run, timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"],
                   track_url=settings["HUB_ACTIVECAMPAIGN_TRACK_URL"],
                   account_id=settings["HUB_ACTIVECAMPAIGN_ACCOUNT_ID"],
                   event_key=settings["HUB_ACTIVECAMPAIGN_EVENT_KEY"])


def account(settings: Settings) -> str:
    """The rate limit is per account: its API host (``<account>.api-us1.com``)."""
    return urlparse(settings["HUB_ACTIVECAMPAIGN_API_URL"]).hostname or "activecampaign"


# -- parameters -------------------------------------------------------------------------------------
class ContactParams(Schema):
    """Who: an ActiveCampaign contact id, or an e-mail (default: the subscriber's)."""

    contact_id = fields.String(load_default=None)
    email = fields.Email(load_default=None)


class FieldValueSchema(Schema):
    field = fields.String(required=True)
    value = fields.Raw(required=True)


class SyncContactParams(Schema):
    email = fields.Email(load_default=None)
    first_name = fields.String(load_default=None)
    last_name = fields.String(load_default=None)
    phone = fields.String(load_default=None)
    field_values = fields.List(fields.Nested(FieldValueSchema), load_default=list)


class TagParams(ContactParams):
    tag = fields.String(required=True, validate=validate.Length(min=1, max=255))


class ListParams(ContactParams):
    list_id = fields.String(required=True, data_key="list")


class FieldParams(ContactParams):
    field = fields.String(required=True)
    value = fields.Raw(required=True)  # a list for multi-select fields


class TrackEventParams(Schema):
    event = fields.String(required=True, validate=validate.Length(min=1, max=32))  # the API's limit
    eventdata = fields.Raw(load_default=None)  # a string, or anything JSON-encodable
    email = fields.Email(load_default=None)

    @validates_schema
    def _data_is_encodable(self, data: dict[str, Any], **_: Any) -> None:
        try:
            json.dumps(data.get("eventdata"))
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"eventdata must be a string or JSON: {exc}", "eventdata") from exc


# -- helpers ----------------------------------------------------------------------------------------
def _email(params: dict[str, Any], ctx: ActionContext) -> str | None:
    return params.get("email") or ctx.subscriber.get("email")


def _digest(value: str) -> str:
    # cache keys hold no personal data
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def contact_id(client: ApiClient, params: dict[str, Any], ctx: ActionContext, *, create: bool) -> str | None:
    """The contact's id; None when it does not exist and ``create`` is false."""
    if params.get("contact_id"):
        return str(params["contact_id"])
    if ctx.subscriber.get("external_id"):
        return str(ctx.subscriber["external_id"])
    email = _email(params, ctx)
    if not email:
        raise PermanentError("ActiveCampaign needs a contact id or an e-mail address")
    if client.dry_run:
        return f"<contact {email}>"
    cache_key = f"contact:{_digest(email)}"
    cached = client.cache.get(cache_key)
    if cached:
        return cached
    found = client.request("GET", f"{API}/contacts", params={"email": email}).data or {}
    contacts = found.get("contacts") or []
    if contacts:
        found_id = str(contacts[0]["id"])
    elif create:
        synced = client.request("POST", f"{API}/contact/sync", json_body={"contact": {"email": email}})
        found_id = str(((synced.data or {}).get("contact") or {})["id"])
    else:
        return None
    client.cache.set(cache_key, found_id, CACHE_TTL)
    return found_id


def tag_id(client: ApiClient, name: str, *, create: bool) -> str | None:
    """The tag's id, looked up by name (exact, case-insensitive) or created; cached."""
    if client.dry_run:
        return f"<tag {name}>"
    cache_key = f"tag:{_digest(name)}"
    cached = client.cache.get(cache_key)
    if cached:
        return cached
    found = client.request("GET", f"{API}/tags", params={"search": name}).data or {}
    # search matches substrings: keep only the exact name
    match = [t for t in found.get("tags") or [] if str(t.get("tag", "")).lower() == name.lower()]
    if match:
        found_id = str(match[0]["id"])
    elif create:
        made = client.request("POST", f"{API}/tags", json_body={"tag": {"tag": name, "tagType": "contact",
                                                                        "description": ""}})
        found_id = str(((made.data or {}).get("tag") or {})["id"])
    else:
        return None
    client.cache.set(cache_key, found_id, CACHE_TTL)
    return found_id


def _int(value: str) -> int | str:
    return int(value) if value.isdigit() else value  # dry-run placeholders stay strings


def _nothing_to_do(client: ApiClient, why: str) -> Outcome:
    return Outcome(status_code=None, request={"skipped": why}, dry_run=client.dry_run)


# -- actions ----------------------------------------------------------------------------------------
def sync_contact(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/3/contact/sync``: create or update the contact by e-mail."""
    email = _email(params, ctx)
    if not email:
        raise PermanentError("sync_contact needs an e-mail address")
    sub = ctx.subscriber
    contact: dict[str, Any] = {"email": email}
    for ours, theirs, fallback in (("first_name", "firstName", sub.get("first_name")),
                                   ("last_name", "lastName", sub.get("last_name")),
                                   ("phone", "phone", sub.get("phone"))):
        value = params.get(ours) or fallback
        if value:
            contact[theirs] = value
    if params.get("field_values"):
        contact["fieldValues"] = [{"field": str(f["field"]), "value": _field_value(f["value"])}
                                  for f in params["field_values"]]
    outcome = client.request("POST", f"{API}/contact/sync", json_body={"contact": contact})
    new_id = ((outcome.data or {}).get("contact") or {}).get("id") if isinstance(outcome.data, dict) else None
    if new_id:
        client.cache.set(f"contact:{_digest(email)}", str(new_id), CACHE_TTL)
        outcome.extra["contact_id"] = str(new_id)
    return outcome


def add_tag(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/3/contactTags`` with the contact's and the tag's integer ids."""
    contact = contact_id(client, params, ctx, create=True)
    tag = tag_id(client, params["tag"], create=True)
    assert contact is not None and tag is not None
    return client.request("POST", f"{API}/contactTags",
                          json_body={"contactTag": {"contact": _int(contact), "tag": _int(tag)}})


def remove_tag(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``DELETE /api/3/contactTags/{id}``, found among the contact's tags; absent is already done."""
    contact = contact_id(client, params, ctx, create=False)
    if contact is None:
        return _nothing_to_do(client, "no such contact")
    tag = tag_id(client, params["tag"], create=False)
    if tag is None:
        return _nothing_to_do(client, "no such tag")
    if client.dry_run:
        return client.request("DELETE", f"{API}/contactTags/<contactTag of {contact} and {tag}>")
    listing = client.request("GET", f"{API}/contacts/{contact}/contactTags").data or {}
    for link in listing.get("contactTags") or []:
        if str(link.get("tag")) == tag:
            return client.request("DELETE", f"{API}/contactTags/{link['id']}")
    return _nothing_to_do(client, "the contact does not have the tag")


def _list_status(status: str) -> Any:
    def run(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
        contact = contact_id(client, params, ctx, create=status == "1")
        if contact is None:
            return _nothing_to_do(client, "no such contact")
        return client.request("POST", f"{API}/contactLists", json_body={
            "contactList": {"list": params["list_id"], "contact": contact, "status": status}})

    run.__doc__ = f"``POST /api/3/contactLists`` with status {status} ({'subscribed' if status == '1' else 'unsubscribed'})."
    return run


subscribe_list = _list_status("1")
unsubscribe_list = _list_status("2")


def _field_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):  # multi-select: ||a||b||
        return "||" + "||".join(str(v) for v in value) + "||"
    return "" if value is None else str(value)


def set_field(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /api/3/fieldValues``: one custom field value on the contact."""
    contact = contact_id(client, params, ctx, create=True)
    return client.request("POST", f"{API}/fieldValues", json_body={
        "fieldValue": {"contact": contact, "field": params["field"], "value": _field_value(params["value"])},
        "useDefaults": False})


def track_event(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """Event Tracking: form-encoded ``actid``, ``key``, ``event``, ``eventdata``, ``visit``; no Api-Token."""
    assert isinstance(client, ActiveCampaignClient)
    if not client.dry_run and not (client.account_id and client.event_key):
        raise PermanentError("track_event needs HUB_ACTIVECAMPAIGN_ACCOUNT_ID and HUB_ACTIVECAMPAIGN_EVENT_KEY")
    form = {"actid": client.account_id or "", "key": client.event_key or "", "event": params["event"]}
    data = params.get("eventdata")
    if data is not None:
        form["eventdata"] = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    email = _email(params, ctx)
    if email:
        form["visit"] = json.dumps({"email": email}, separators=(",", ":"))
    if ctx.attempt > 1 and not client.dry_run and (email or ctx.subscriber.get("external_id")):
        already = _tracked_since(client, params, ctx, form)
        if already is not None:
            return already
    tracker = ApiClient(client.track_url, {"Content-Type": "application/x-www-form-urlencoded"},
                        dry_run=client.dry_run, timeout=client.timeout, session=client.session)
    tracker.secret_fields, tracker.throttle = client.secret_fields, client.throttle
    outcome = tracker.request("POST", client.track_url, form=form)
    # the tracking endpoint answers 200 with {"success": 0, "message": ...} when it refuses an event
    if isinstance(outcome.data, dict) and str(outcome.data.get("success", "1")) == "0":
        raise PermanentError(f"event tracking refused the event: {outcome.data.get('message', '')}",
                             status=outcome.status_code, response=outcome.response)
    return outcome


SKEW = timedelta(minutes=5)  # between the hub's clock and ActiveCampaign's


def _tracked_since(client: ApiClient, params: dict[str, Any], ctx: ActionContext, form: dict[str, str]
                   ) -> Outcome | None:
    """A retry of ``track_event``: the tracking endpoint takes no idempotency key, so ask the contact's
    tracking log whether the first try arrived. Returns the lookup as the outcome when an entry of the
    same event and data was recorded since the first try, else None (send it)."""
    contact = contact_id(client, params, ctx, create=False)
    if contact is None:
        return None  # no such contact: the first try did not record anything against one
    since = (ctx.tried_since or datetime.now(timezone.utc)) - SKEW
    outcome = client.request("GET", f"{API}/trackingLogs", whole=True, params={
        "filters[subscriberid]": contact, "filters[type]": form["event"],  # type: substring match
        "orders[tstamp]": "DESC", "limit": PAGE})
    sent = form.get("eventdata", "")
    for entry in (outcome.data or {}).get("trackingLogs") or []:
        try:
            at = parse_time(entry.get("tstamp"))
        except (TypeError, ValueError):
            continue
        value = str(entry.get("value") or "")
        # the log keeps the data cut short (about 255 characters): a long value matches on its start
        same = value == sent or (len(value) >= 200 and sent.startswith(value))
        if entry.get("type") == form["event"] and same and at >= since:
            outcome.extra["already"] = {"tracking_log": entry.get("id"), "tstamp": entry.get("tstamp")}
            return outcome
    return None


def check(client: ApiClient) -> Outcome:
    """``GET /api/3/users/me``: reads the token's own user, changes nothing."""
    return client.request("GET", f"{API}/users/me")


ACTIONS: dict[str, ActionSpec] = {
    "sync_contact": ActionSpec("sync_contact", SyncContactParams, sync_contact,
                               "Create or update a contact by e-mail (names, phone, custom fields)."),
    "add_tag": ActionSpec("add_tag", TagParams, add_tag, "Tag a contact (the tag is created if missing)."),
    "remove_tag": ActionSpec("remove_tag", TagParams, remove_tag, "Remove a tag from a contact."),
    "subscribe_list": ActionSpec("subscribe_list", ListParams, subscribe_list, "Subscribe a contact to a list."),
    "unsubscribe_list": ActionSpec("unsubscribe_list", ListParams, unsubscribe_list,
                                   "Unsubscribe a contact from a list."),
    "set_field": ActionSpec("set_field", FieldParams, set_field, "Set one custom field value on a contact."),
    "track_event": ActionSpec("track_event", TrackEventParams, track_event,
                              "Record a custom event (Event Tracking must be on in the account).",
                              on_repeat=OnRepeat(
                                  "single, unless ActiveCampaign has not yet listed the first one when the retry "
                                  "looks", "the endpoint takes no key, so a retry first reads the contact's "
                                  "tracking log (`GET /api/3/trackingLogs`): an entry of the same event and data "
                                  "recorded since the first try counts as this one, and nothing is sent again")),
}


# -- reads ------------------------------------------------------------------------------------------
PAGE = 100  # the API's largest ``limit``


def _contacts(client: ApiClient, filters: dict[str, Any]) -> set[str]:
    """Every e-mail of ``GET /api/3/contacts`` with ``filters``, paged by offset until ``meta.total``
    (a string in the answer) is reached or a page comes back empty."""
    emails: set[str] = set()
    offset = 0
    while True:
        body = client.request("GET", f"{API}/contacts", params={**filters, "limit": PAGE, "offset": offset}).data or {}
        page = body.get("contacts") or []
        emails.update(str(c["email"]).strip().lower() for c in page if c.get("email"))
        offset += len(page)
        try:
            total = int((body.get("meta") or {}).get("total") or 0)
        except (TypeError, ValueError):
            total = 0
        if not page or offset >= total:
            return emails


def list_members(client: ApiClient, list_id: str) -> set[str] | None:
    """E-mails of the contacts subscribed (status 1) to a list; None in dry run (unknown)."""
    if client.dry_run:
        return None
    return _contacts(client, {"listid": list_id, "status": 1})


def tag_members(client: ApiClient, tag: str) -> set[str] | None:
    """E-mails of the contacts carrying the tag named ``tag``; None in dry run (unknown). A tag that
    does not exist yet has no members."""
    if client.dry_run:
        return None
    found = tag_id(client, tag, create=False)
    return set() if found is None else _contacts(client, {"tagid": found})


def members(client: ApiClient, target: str) -> set[str] | None:
    """The Connector's ``members``: ``activecampaign:list:<id>`` and ``activecampaign:tag:<name>``."""
    tool, kind, ref = target.split(":", 2)
    if tool != "activecampaign":
        return None
    return list_members(client, ref) if kind == "list" else tag_members(client, ref) if kind == "tag" else None
