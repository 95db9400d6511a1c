"""The Flask app factory: webhooks in, a small admin JSON API, health checks and metrics."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from hub.runtime import Hub, current


def create_app(hub: Hub | None = None) -> Flask:
    hub = hub or current()
    app = Flask("hub")
    app.config["MAX_CONTENT_LENGTH"] = hub.settings["HUB_MAX_BODY_BYTES"]
    app.extensions["hub"] = hub

    from hub.web.api import bp as api_bp
    from hub.web.changes import api as changes_bp
    from hub.web.changes import page as self_service_bp
    from hub.web.console import bp as console_bp
    from hub.web.health import bp as health_bp
    from hub.web.prometheus import bp as prometheus_bp
    from hub.web.subscribers import bp as subscribers_bp
    from hub.web.usage import bp as usage_bp
    from hub.web.webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(subscribers_bp)
    app.register_blueprint(changes_bp)
    app.register_blueprint(self_service_bp)
    app.register_blueprint(usage_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(prometheus_bp)
    app.register_blueprint(console_bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.name.lower(), message=exc.description), exc.code

    return app
