"""The web console at ``/``: server-rendered pages over what the hub holds, with replay, cancel,
unmerge and reconcile. Sign-in and CSRF in ``auth``; pages in ``views``; queries in ``data``."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console-static")

from hub.web.console import auth, views  # noqa: E402,F401  (they register their routes on bp)
