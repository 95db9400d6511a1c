"""The Flask app factory: webhooks in, a small admin JSON API, health checks and metrics."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from ..runtime import Hub, current


def create_app(hub: Hub | None = None) -> Flask:
    hub = hub or current()
    app = Flask("hub")
    app.config["MAX_CONTENT_LENGTH"] = hub.settings["HUB_MAX_BODY_BYTES"]
    app.extensions["hub"] = hub

    from .api import bp as api_bp
    from .console import bp as console_bp
    from .health import bp as health_bp
    from .prometheus import bp as prometheus_bp
    from .subscribers import bp as subscribers_bp
    from .webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(subscribers_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(prometheus_bp)
    app.register_blueprint(console_bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.name.lower(), message=exc.description), exc.code

    return app
