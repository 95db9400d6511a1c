"""``hub serve``, ``hub worker``, ``hub scheduler`` and ``hub run`` (all three in one process)."""

from __future__ import annotations

import threading
from typing import Any

import click

import connectors
from hub import jobs, scheduler
from hub.runtime import Hub, current


def all_queue_names() -> list[str]:
    return jobs.all_queue_names(connectors.senders())


def start_background(hub: Hub, stop: threading.Event, workers: int = 2) -> list[threading.Thread]:
    """Scheduler and worker threads for ``hub run``."""
    threads = [threading.Thread(target=scheduler.run, args=(hub, stop), name="scheduler", daemon=True)]
    for i in range(workers):
        worker = jobs.make_worker(hub.redis, all_queue_names(), jobs.ThreadWorker)

        def loop(w: Any = worker) -> None:
            while not stop.is_set():
                w.work(burst=True, logging_level="WARNING")
                stop.wait(0.2)

        threads.append(threading.Thread(target=loop, name=f"worker-{i}", daemon=True))
    for t in threads:
        t.start()
    return threads


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=4, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=4, show_default=True, type=int, help="threads per worker process")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the web app (webhooks, API, health) under gunicorn."""
    from gunicorn.app.base import BaseApplication

    current().rules  # validate settings and rules before forking

    class App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)

        def load(self) -> Any:
            from hub.web import create_app

            return create_app()

    App().run()


@click.command()
@click.option("--queue", "-q", "queues", multiple=True, help="Queues to listen on (default: all).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker on the ingest and deliver-* queues."""
    hub = current()
    hub.rules  # refuse to start on rules that do not load
    if hub.settings.embedded_queue:
        raise click.ClickException("HUB_REDIS_URL is not set: separate workers need a shared Redis "
                                   "(use `hub run` for the single-process mode)")
    jobs.make_worker(hub.redis, list(queues) or all_queue_names()).work(burst=burst, with_scheduler=False)


@click.command("scheduler")
def scheduler_cmd() -> None:
    """Move due actions onto the queues and recover stranded work."""
    hub = current()
    hub.rules  # refuse to start on rules that do not load
    stop = threading.Event()
    try:
        scheduler.run(hub, stop)
    except KeyboardInterrupt:
        stop.set()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=int, help="worker threads")
def run(host: str, port: int, workers: int) -> None:
    """Web app, workers and scheduler in one process (development and the embedded default)."""
    from werkzeug.serving import run_simple

    from hub.store.migrate import upgrade
    from hub.web import create_app

    hub = current()
    hub.rules  # refuse to start on rules that do not load
    upgrade(hub.store)
    stop = threading.Event()
    start_background(hub, stop, workers)
    mode = "in-process queue" if hub.settings.embedded_queue else "Redis queue"
    click.echo(f"hub: listening on http://{host}:{port} ({hub.store.engine.url.render_as_string()}, {mode})",
               err=True)
    try:
        run_simple(host, port, create_app(hub), threaded=True, use_reloader=False)
    finally:
        stop.set()


COMMANDS = [serve, worker, scheduler_cmd, run]
