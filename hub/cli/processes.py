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
        worker.beats_itself = False  # one Heartbeat across its many burst runs (below)

        def loop(w: Any = worker) -> None:
            beat = jobs.Heartbeat(hub.redis, w.name).start()
            try:
                while not stop.is_set():
                    w.work(burst=True, logging_level="WARNING")
                    stop.wait(0.2)
            finally:
                beat.close()

        threads.append(threading.Thread(target=loop, name=f"worker-{i}", daemon=True))
    for t in threads:
        t.start()
    return threads


def _flush_relay(server: Any, worker: Any) -> None:
    """A gunicorn worker leaving hands its acknowledged deliveries to the queue first (else the
    sweeper would pick them up later)."""
    current().relay.flush(2.0)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=int, help="Worker processes.")
@click.option("--threads", default=8, show_default=True, type=int, help="App threads per process.")
@click.option("--pid", "pidfile", type=click.Path(dir_okay=False), default=None,
              help="Write the master's process id here (for `kill -HUP` / `kill -USR2`).")
def serve(host: str, port: int, workers: int, threads: int, pidfile: str | None) -> None:
    """Serve the web app (webhooks, API, health) under gunicorn.

    gunicorn processes serving with waitress. Each request is read whole, headers and body, before an
    app thread runs it, so slow clients cost a connection, never a thread (see hub/web/server.py).
    Restarts never close the port: `kill -HUP` replaces the worker processes, `kill -USR2` starts a
    new master (new code) on the same socket, then `kill -TERM` stops the old one; a stopping worker
    answers what it holds first."""
    from gunicorn.app.base import BaseApplication

    from hub import telemetry

    telemetry.prepare_multiprocess()  # the workers' counters go to files /metrics adds up
    current().rules  # validate settings and rules before forking

    class App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "hub.web.server.WaitressWorker")
            self.cfg.set("threads", threads)
            self.cfg.set("graceful_timeout", 4)  # SIGTERM: a worker drains for up to 4 s, then exits
            if pidfile:
                self.cfg.set("pidfile", pidfile)  # after USR2 the old master's moves to <pidfile>.oldbin
            self.cfg.set("keepalive", 2)
            self.cfg.set("control_socket_disable", True)  # one fixed path per user: signals are the interface
            self.cfg.set("worker_exit", _flush_relay)

        def load(self) -> Any:
            from hub.web import create_app

            return create_app()

    App().run()


@click.command()
@click.option("--queues", "--queue", "-q", "queues", multiple=True,
              help="`ingest`, `deliver` (every deliver-* queue) or a queue's name; repeatable "
                   "(default: all, served round robin).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run a worker on the ingest and deliver-* queues.

    One process, no fork per job; SIGTERM finishes the job in hand and exits, a second SIGTERM stops
    at once."""
    from hub import telemetry

    telemetry.prepare_multiprocess(worker=True)  # its jobs record under this worker's id
    hub = current()
    hub.rules  # refuse to start on rules that do not load (and compile them once, before any job)
    if hub.settings.embedded_queue:
        raise click.ClickException("HUB_REDIS_URL is not set: separate workers need a shared Redis "
                                   "(use `hub run` for the single-process mode)")
    names = jobs.queue_names([n for q in queues for n in q.split(",") if n], connectors.senders())
    jobs.run_worker(lambda: jobs.make_worker(hub.redis, names), burst=burst)


@click.command("scheduler")
def scheduler_cmd() -> None:
    """Move due actions onto the queues; recover stranded work."""
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
@click.option("--workers", default=2, show_default=True, type=int, help="Worker threads.")
def run(host: str, port: int, workers: int) -> None:
    """Web app, workers and scheduler in one process.

    For development and the embedded default (SQLite file, in-process queue)."""
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
