"""HubSpot outbound API (CRM v3 and custom behavioral events), ``Authorization: Bearer <token>``
(providers.md §4.4).

- Contacts are upserted in batches by e-mail (``idProperty: email``); each input carries its action
  key as ``objectWriteTraceId`` so a 207 answer names exactly the inputs that failed.
- List memberships need record ids: taken from upsert answers or looked up by e-mail
  (``GET /crm/v3/objects/contacts/{email}?idProperty=email``), cached per account for a day in
  the client's shared id cache (Redis when delivery installs it).
- Custom events carry ``uuid`` = the action key: HubSpot keeps only the first event with a uuid.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any
from urllib.parse import quote

from marshmallow import Schema, fields, validate

from connectors.base import ActionContext, ActionSpec, BatchSpec, ItemOutcome, OnRepeat
from connectors.http import ID_TTL, ApiClient, LocalCache, Outcome
from hub.kernel.errors import ActionError, PermanentError, RetriableError
from hub.kernel.settings import Settings

UPSERT_MAX = 100  # HubSpot's batch input limit (providers.md §4.4)
EVENTS_MAX = 500
LIST_MAX = 100
_UUID_NAMESPACE = uuid.UUID("5e0f3b8a-2f4c-4f4e-9d65-6f1e3c0a9b21")


class HubSpotClient(ApiClient):
    connector = "hubspot"
    account: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool) -> "HubSpotClient":
        token = settings["HUB_HUBSPOT_ACCESS_TOKEN"] or ""
        client = cls(settings.get("HUB_HUBSPOT_API_URL", "https://api.hubapi.com"),
                     {"Authorization": f"Bearer {token}", "Accept": "application/json"},
                     dry_run=dry_run, timeout=settings["HUB_HTTP_TIMEOUT_SECONDS"])
        client.account = client.base_url + "#" + hashlib.sha256(token.encode()).hexdigest()[:16]
        return client


CONTACT_IDS = LocalCache()


def _cached_id(client: ApiClient, email: str) -> str | None:
    return (getattr(client, "cache", None) or CONTACT_IDS).get(_id_key(client, email))


def _remember(client: ApiClient, email: str, record_id: Any) -> None:
    (getattr(client, "cache", None) or CONTACT_IDS).set(_id_key(client, email), str(record_id), ID_TTL)


def _id_key(client: ApiClient, email: str) -> str:
    return f"hubspot:contact:{_account(client)}:{email.lower()}"


# -- schemas ---------------------------------------------------------------------------------
class UpsertContactParams(Schema):
    email = fields.Email(load_default=None)  # default: the subscriber's e-mail
    properties = fields.Dict(keys=fields.String(), load_default=dict)


class SendEventParams(Schema):
    event_name = fields.String(required=True)  # the fully qualified name, e.g. pe1234567_plan_renewed
    email = fields.Email(load_default=None)
    object_id = fields.String(load_default=None)
    utk = fields.String(load_default=None)
    occurred_at = fields.String(load_default=None)  # ISO-8601 date-time
    properties = fields.Dict(keys=fields.String(), load_default=dict)


class ListMembershipParams(Schema):
    list_id = fields.String(required=True, validate=validate.Length(min=1))
    email = fields.Email(load_default=None)
    record_id = fields.String(load_default=None)  # skip the lookup when the contact id is known


class SetPropertiesParams(Schema):
    email = fields.Email(load_default=None)
    properties = fields.Dict(keys=fields.String(), required=True, validate=validate.Length(min=1))


# -- helpers ---------------------------------------------------------------------------------
def _email(params: dict[str, Any], ctx: ActionContext) -> str:
    email = params.get("email") or ctx.subscriber.get("email")
    if not email:
        raise PermanentError("HubSpot needs the contact's e-mail (no email parameter and none on the subscriber)")
    return str(email)


def _property_values(properties: dict[str, Any]) -> dict[str, str]:
    """HubSpot property values are strings; an empty string clears a property (so does null here)."""
    out: dict[str, str] = {}
    for name, value in properties.items():
        if value is None:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value)
    return out


def event_uuid(key: str) -> str:
    """The action key when it is a UUID (planned actions), else a UUID derived from it."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(_UUID_NAMESPACE, key))


def _single(batch: BatchSpec, client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    outcome, items = batch.run(client, [(params, ctx)])
    if items and items[0].error is not None:
        raise items[0].error
    return outcome


def _account(client: ApiClient) -> str:
    return getattr(client, "account", "") or client.base_url


# -- upsert_contact --------------------------------------------------------------------------
def upsert_batch(client: ApiClient, items: list[tuple[dict[str, Any], ActionContext]]
                 ) -> tuple[Outcome, list[ItemOutcome]]:
    """``POST /crm/v3/objects/contacts/batch/upsert`` for up to 100 contacts. On 207 only the inputs
    named by ``errors[].context.objectWriteTraceId`` (or by their e-mail) fail."""
    inputs: list[dict[str, Any]] = []
    results: list[ItemOutcome | None] = []
    for params, ctx in items:
        try:
            email = _email(params, ctx)
        except PermanentError as exc:
            results.append(ItemOutcome(ok=False, error=exc))
            continue
        results.append(None)
        inputs.append({"id": email, "idProperty": "email", "objectWriteTraceId": ctx.key,
                       "properties": _property_values(params.get("properties") or {})})
    if not inputs:
        return Outcome(status_code=None, request={}), [r for r in results if r is not None]
    outcome = client.request("POST", "/crm/v3/objects/contacts/batch/upsert", json_body={"inputs": inputs})
    body = outcome.data if isinstance(outcome.data, dict) else {}
    for result in body.get("results") or []:
        email = (result.get("properties") or {}).get("email")
        if email and result.get("id"):
            _remember(client, email, result["id"])
    failed = _failed_inputs(body.get("errors") or [], inputs) if outcome.status_code == 207 else {}
    out: list[ItemOutcome] = []
    sent = iter(inputs)
    for result in results:
        if result is not None:
            out.append(result)
            continue
        item = next(sent)
        error = failed.get(item["objectWriteTraceId"])
        out.append(ItemOutcome(ok=error is None, error=error))
    return outcome, out


def _failed_inputs(errors: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> dict[str, ActionError]:
    by_email = {i["id"].lower(): i["objectWriteTraceId"] for i in inputs}
    failed: dict[str, ActionError] = {}
    unattributed: list[dict[str, Any]] = []
    for error in errors:
        context = error.get("context") or {}
        named = [t for t in context.get("objectWriteTraceId") or [] if t in by_email.values()]
        named += [by_email[v.lower()] for vals in context.values() if isinstance(vals, list)
                  for v in vals if isinstance(v, str) and v.lower() in by_email]
        if not named:
            unattributed.append(error)
        for trace in named:
            failed[trace] = _item_error(error)
    if unattributed and not failed:
        # an error we cannot tie to an input: fail them all rather than claim success
        for item in inputs:
            failed[item["objectWriteTraceId"]] = _item_error(unattributed[0])
    return failed


def _item_error(error: dict[str, Any]) -> ActionError:
    category = str(error.get("category") or "")
    message = f"HubSpot refused the contact: {category} {error.get('message') or ''}".strip()
    if category in ("RATE_LIMITS", "RATE_LIMIT", "INTERNAL_ERROR", "TIMEOUT"):
        return RetriableError(message, status=207, response=error)
    return PermanentError(message, status=207, response=error)


UPSERT_BATCH = BatchSpec(UPSERT_MAX, upsert_batch)


def upsert_contact(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    return _single(UPSERT_BATCH, client, params, ctx)


# -- send_event ------------------------------------------------------------------------------
def _event_input(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    body: dict[str, Any] = {"eventName": params["event_name"], "uuid": event_uuid(ctx.key),
                            "properties": _property_values(params.get("properties") or {})}
    if params.get("object_id"):
        body["objectId"] = params["object_id"]
    elif params.get("utk"):
        body["utk"] = params["utk"]
    else:
        body["email"] = _email(params, ctx)
    if params.get("occurred_at"):
        body["occurredAt"] = params["occurred_at"]
    return body


def send_event(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``POST /events/v3/send`` (204)."""
    return client.request("POST", "/events/v3/send", json_body=_event_input(params, ctx))


def send_event_batch(client: ApiClient, items: list[tuple[dict[str, Any], ActionContext]]
                     ) -> tuple[Outcome, list[ItemOutcome]]:
    """``POST /events/v3/send/batch`` with ``{"inputs": [...]}``; a repeated uuid is ignored by HubSpot."""
    inputs: list[dict[str, Any]] = []
    results: list[ItemOutcome | None] = []
    for params, ctx in items:
        try:
            inputs.append(_event_input(params, ctx))
            results.append(None)
        except PermanentError as exc:
            results.append(ItemOutcome(ok=False, error=exc))
    if not inputs:
        return Outcome(status_code=None, request={}), [r for r in results if r is not None]
    outcome = client.request("POST", "/events/v3/send/batch", json_body={"inputs": inputs})
    return outcome, [r or ItemOutcome(ok=True) for r in results]


EVENTS_BATCH = BatchSpec(EVENTS_MAX, send_event_batch)


# -- lists -----------------------------------------------------------------------------------
def resolve_record_id(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> str:
    """The contact's record id: given, cached (from an upsert or an earlier lookup), or looked up."""
    if params.get("record_id"):
        return str(params["record_id"])
    email = _email(params, ctx)
    cached = _cached_id(client, email)
    if cached:
        return cached
    if client.dry_run:
        return f"<record id of {email}>"
    try:
        found = client.request("GET", f"/crm/v3/objects/contacts/{quote(email, safe='@')}",
                               params={"idProperty": "email"})
    except PermanentError as exc:
        if exc.status == 404:
            # usually an upsert_contact planned by the same rule that has not run yet: try again later
            raise RetriableError("no HubSpot contact with this e-mail yet (plan hubspot.upsert_contact first)",
                                 status=404, response=exc.response) from exc
        raise
    record_id = str((found.data or {}).get("id") or "") if isinstance(found.data, dict) else ""
    if not record_id:
        raise PermanentError("HubSpot answered the contact lookup without an id", status=found.status_code)
    _remember(client, email, record_id)
    return record_id


def _membership_batch(verb: str):  # type: ignore[no-untyped-def]
    def run(client: ApiClient, items: list[tuple[dict[str, Any], ActionContext]]
            ) -> tuple[Outcome, list[ItemOutcome]]:
        """``PUT /crm/v3/lists/{listId}/memberships/add|remove`` with a JSON array of record ids.
        Ids HubSpot reports in ``recordIdsMissing`` fail; the others succeed."""
        record_ids: list[str | None] = []
        results: list[ItemOutcome | None] = []
        for params, ctx in items:
            try:
                record_ids.append(resolve_record_id(client, params, ctx))
                results.append(None)
            except ActionError as exc:
                record_ids.append(None)
                results.append(ItemOutcome(ok=False, error=exc))
        to_send = list(dict.fromkeys(r for r in record_ids if r))
        if not to_send:
            return Outcome(status_code=None, request={}), [r for r in results if r is not None]
        list_id = items[0][0]["list_id"]
        outcome = client.request("PUT", f"/crm/v3/lists/{quote(str(list_id), safe='')}/memberships/{verb}",
                                 json_body=to_send)
        body = outcome.data if isinstance(outcome.data, dict) else {}
        missing = {str(r) for r in body.get("recordIdsMissing") or []}
        out: list[ItemOutcome] = []
        for record_id, result in zip(record_ids, results):
            if result is not None:
                out.append(result)
            elif record_id in missing:
                out.append(ItemOutcome(ok=False, error=PermanentError(
                    f"HubSpot has no contact with record id {record_id}", status=outcome.status_code)))
            else:
                out.append(ItemOutcome(ok=True))
        return outcome, out

    return run


ADD_BATCH = BatchSpec(LIST_MAX, _membership_batch("add"), lambda params: str(params.get("list_id")))
REMOVE_BATCH = BatchSpec(LIST_MAX, _membership_batch("remove"), lambda params: str(params.get("list_id")))


def add_to_list(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    return _single(ADD_BATCH, client, params, ctx)


def remove_from_list(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    return _single(REMOVE_BATCH, client, params, ctx)


# -- set_properties --------------------------------------------------------------------------
def set_properties(client: ApiClient, params: dict[str, Any], ctx: ActionContext) -> Outcome:
    """``PATCH /crm/v3/objects/contacts/{email}?idProperty=email`` with ``{"properties": {...}}``."""
    email = _email(params, ctx)
    try:
        return client.request("PATCH", f"/crm/v3/objects/contacts/{quote(email, safe='@')}",
                              params={"idProperty": "email"},
                              json_body={"properties": _property_values(params["properties"])})
    except PermanentError as exc:
        if exc.status == 404:
            raise RetriableError("no HubSpot contact with this e-mail yet (plan hubspot.upsert_contact first)",
                                 status=404, response=exc.response) from exc
        raise


ACTIONS: dict[str, ActionSpec] = {
    "upsert_contact": ActionSpec("upsert_contact", UpsertContactParams, upsert_contact,
                                 "Create or update a contact by e-mail (batched, up to 100 per call).",
                                 batch=UPSERT_BATCH),
    "send_event": ActionSpec("send_event", SendEventParams, send_event,
                             "Send a custom behavioral event (uuid = action key, so sent once).",
                             batch=EVENTS_BATCH,
                             on_repeat=OnRepeat("single", "`uuid` = the action key: HubSpot keeps the first "
                                                          "event with a uuid")),
    "add_to_list": ActionSpec("add_to_list", ListMembershipParams, add_to_list,
                              "Add a contact to a MANUAL or SNAPSHOT list.", batch=ADD_BATCH),
    "remove_from_list": ActionSpec("remove_from_list", ListMembershipParams, remove_from_list,
                                   "Remove a contact from a MANUAL or SNAPSHOT list.", batch=REMOVE_BATCH),
    "set_properties": ActionSpec("set_properties", SetPropertiesParams, set_properties,
                                 "Update properties of an existing contact by e-mail (\"\" or null clears)."),
}


def rate_limits(per_ten_seconds: int) -> dict[str, tuple[tuple[int, float], ...]]:
    """One account-wide bucket: 100 per 10 s (Free/Starter, OAuth apps) or 190 (Pro/Enterprise)."""
    return {"default": ((per_ten_seconds, 10.0),)}


# -- reads -----------------------------------------------------------------------------------
MEMBERSHIPS_PAGE = 250  # the memberships endpoint's largest page
READ_MAX = 100  # batch/read inputs per call


def list_members(client: ApiClient, list_id: str) -> set[str] | None:
    """E-mails of a list's contacts; None in dry run (unknown). ``GET /crm/v3/lists/{listId}/memberships``
    gives record ids only (paged by ``paging.next.after``); they are turned into e-mails with
    ``POST /crm/v3/objects/contacts/batch/read`` (properties ``email``), 100 per call. Contacts
    without an e-mail are not counted."""
    if client.dry_run:
        return None
    record_ids: list[str] = []
    params: dict[str, Any] = {"limit": MEMBERSHIPS_PAGE}
    while True:
        body = client.request("GET", f"/crm/v3/lists/{quote(str(list_id), safe='')}/memberships",
                              params=params).data or {}
        record_ids.extend(str(r["recordId"]) for r in body.get("results") or [] if r.get("recordId") is not None)
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            break
        params = {"limit": MEMBERSHIPS_PAGE, "after": after}
    emails: set[str] = set()
    unique = list(dict.fromkeys(record_ids))
    for start in range(0, len(unique), READ_MAX):
        read = client.request("POST", "/crm/v3/objects/contacts/batch/read", json_body={
            "properties": ["email"], "inputs": [{"id": r} for r in unique[start:start + READ_MAX]]}).data or {}
        for contact in read.get("results") or []:
            email = (contact.get("properties") or {}).get("email")
            if email:
                emails.add(str(email).strip().lower())
                _remember(client, str(email), contact.get("id"))
    return emails


def members(client: ApiClient, target: str) -> set[str] | None:
    """The Connector's ``members``: ``hubspot:list:<listId>`` is readable, nothing else."""
    tool, kind, ref = target.split(":", 2)
    return list_members(client, ref) if (tool, kind) == ("hubspot", "list") else None
