"""Who may use the console. With ``HUB_ADMIN_TOKEN`` set, a sign-in form takes the token and the
session cookie (HttpOnly, SameSite=Lax, Secure behind an https ``HUB_PUBLIC_URL``) remembers it;
changing the token signs everyone out. Unset (development), loopback clients are served without
sign-in, like the API (hub/web/auth.py). Every POST carries the session's CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask.sansio.blueprints import BlueprintSetupState

from hub.web.console import bp

OPEN_ENDPOINTS = {"console.static", "console.login", "console.logout"}


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    app = state.app
    settings = app.extensions["hub"].settings
    if not app.secret_key:
        # derived, so every worker process signs cookies alike; no new secret to manage
        seed = settings["HUB_ADMIN_TOKEN"] or f"development:{settings.database_url}"
        app.secret_key = hashlib.sha256(b"hub-console-session\0" + seed.encode()).hexdigest()
    app.config.update(SESSION_COOKIE_NAME="hub_console", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=(settings["HUB_PUBLIC_URL"] or "").startswith("https://"))


def _token() -> str | None:
    return current_app.extensions["hub"].settings["HUB_ADMIN_TOKEN"] or None


def _fingerprint(token: str) -> str:
    return hashlib.sha256(b"hub-console-signed-in\0" + token.encode()).hexdigest()


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    token = _token()
    return {"csrf_token": csrf_token,
            "signed_in": token is not None and session.get("signed_in") == _fingerprint(token)}


@bp.before_request
def guard() -> Any:
    token = _token()
    if token is None:
        hub = current_app.extensions["hub"]
        if request.remote_addr not in ("127.0.0.1", "::1") or hub.settings.production:
            abort(401, "Set HUB_ADMIN_TOKEN to use the console from another machine.")
    elif request.endpoint not in OPEN_ENDPOINTS and not hmac.compare_digest(
            str(session.get("signed_in", "")), _fingerprint(token)):
        if request.method != "GET":
            abort(401, "Signed out: sign in again.")
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, str(session.get("csrf", ""))):
            abort(400, "csrf_token: missing or stale; reload the page and try again.")
    return None


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme), else the overview."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("console.overview")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    token = _token()
    target = _safe_next(request.values.get("next"))
    if token is None:
        return redirect(target)
    error = None
    if request.method == "POST":
        given = request.form.get("token", "")
        if given and hmac.compare_digest(given.encode(), token.encode()):
            session.clear()
            session["signed_in"] = _fingerprint(token)
            csrf_token()  # a fresh CSRF token for the new session
            return redirect(target)
        error = "That is not the admin token (HUB_ADMIN_TOKEN)."
    return render_template("console/login.html", error=error, next=target), (401 if error else 200)


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("console.login"))
