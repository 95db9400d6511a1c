"""The production web server for ``hub serve``: gunicorn processes that serve with waitress, with a
deadline per request.

Why waitress (benchmarks/slow_clients.py measures the alternatives): it reads every request,
headers *and* body, on its event loop, and hands it to an app thread only once complete. A client
that dribbles bytes costs a socket, never a thread; a body over the cap is refused with 413 while
it is read (chunked or not), so it never reaches the app at all. Under gunicorn's gthread worker
the same 16 slow sockets held all 4x4 threads and the hub stopped answering.

What waitress does not do on its own is bound how long one request may take to arrive: its
``channel_timeout`` only closes *idle* connections, so a client sending a byte every few seconds
would stay forever. ``_DeadlineChannel`` notes when a request's first byte came, and the server's
periodic maintenance closes any connection still reading a request after
HUB_SERVE_REQUEST_TIMEOUT_SECONDS. With at most HUB_SERVE_MAX_CONNECTIONS open at once, slow
clients can take at most that many sockets, for at most that long.

gunicorn still forks, supervises and restarts the worker processes (``WaitressWorker``), so the
hub uses every core; inside each process waitress does the reading.

A worker told to stop (SIGTERM: ``kill -HUP`` on the master replaces the workers, ``kill -TERM``
stops them) drains instead of dropping what it holds: it stops accepting and lets go of its copy of the
listening socket (the master's copy keeps the port open, so new connections wait in the backlog for
the other workers; a master that is stopping too has closed its copy, and the port closes), answers
every request it has begun reading with ``Connection: close``, closes keep-alive connections idle
for a second, and exits once it holds none, or when the graceful timeout is up. With ``kill -USR2`` (a new master
on the same socket, new code) then ``kill -TERM`` of the old master, the port never closes
(README, Operations).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any

from gunicorn.workers.base import Worker
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from hub.kernel.settings import Settings

log = logging.getLogger(__name__)

IDLE_BEFORE_CLOSE = 1.0  # draining: seconds a keep-alive connection must have been idle to be closed


class _DeadlineChannel(HTTPChannel):
    """An HTTP connection that remembers when the request it is reading began."""

    request_started: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.monotonic()
        taken = bool(super().received(data))
        if self.server.draining:
            self.close_after_answers()
        return taken

    def close_after_answers(self) -> None:
        """Answer the requests already read with ``Connection: close`` (waitress reads the request's
        header to decide), so the client opens its next connection to a worker that stays."""
        for request in list(self.requests):
            request.headers["CONNECTION"] = "close"

    @property
    def idle(self) -> bool:
        return self.request is None and not self.requests and not self.total_outbufs_len


class _DeadlineServer(TcpWSGIServer):
    channel_class = _DeadlineChannel
    request_timeout = 30.0
    draining = False
    drain_until = 0.0

    def drain(self, within: float) -> None:
        """Stop accepting and leave once every connection held is answered (called by a signal
        handler: the event loop does the work on its next pass, in ``maintenance``)."""
        self.draining, self.drain_until = True, time.monotonic() + within
        self.accepting = False  # the socket stays open in the master: new connections go to other workers
        self.next_channel_cleanup = 0  # run maintenance on the loop's next pass

    detached = False

    def detach(self) -> None:
        """Let go of this process's copy of the listening socket. While the master (or a new master)
        keeps its copy, the port stays open for the other workers; when the master is stopping too,
        the port closes at once, so a new connection is refused (a client or load balancer retries
        it elsewhere) instead of waiting in a backlog nobody reads, to be reset when the last worker
        leaves."""
        listener = self.socket
        placeholder = socket.socket(listener.family, socket.SOCK_STREAM)
        os.dup2(placeholder.fileno(), listener.fileno())  # the fd now names a socket that listens to nothing
        placeholder.close()
        self.detached = True

    def maintenance(self, now: float) -> None:
        if self.draining:
            self.next_channel_cleanup = 0  # every pass while draining (the loop wakes at least once a second)
            if not self.detached:
                self.detach()
            for channel in list(self.active_channels.values()):
                channel.close_after_answers()
                # a keep-alive connection idle for a second is closed; one in use is closed by its
                # next answer (Connection: close), so a client sending at that moment is not cut off
                if channel.idle and time.time() - channel.last_activity >= IDLE_BEFORE_CLOSE:
                    channel.will_close = True  # the event loop closes it on its next pass
            if not self.active_channels or time.monotonic() > self.drain_until:
                if self.active_channels:
                    log.warning("graceful timeout: closing %d connection(s) still busy", len(self.active_channels))
                raise SystemExit(0)  # out of the event loop: run() returns
        super().maintenance(now)  # idle connections (waitress's channel_timeout)
        cutoff = time.monotonic() - self.request_timeout
        for channel in list(self.active_channels.values()):
            reading = channel.request is not None and not channel.requests
            if reading and channel.request_started is not None and channel.request_started < cutoff:
                log.warning("closing a connection from %s: request not received within %.0f s",
                            channel.addr[0] if channel.addr else "?", self.request_timeout)
                channel.will_close = True  # the event loop closes it on its next pass


def make_server(app: Any, settings: Settings, sock: socket.socket, threads: int) -> _DeadlineServer:
    """A server on the listening socket ``sock``; ``.run()`` serves until interrupted."""
    timeout = float(settings["HUB_SERVE_REQUEST_TIMEOUT_SECONDS"])
    adj = Adjustments(
        sockets=[sock], threads=threads,
        connection_limit=settings["HUB_SERVE_MAX_CONNECTIONS"],
        # waitress refuses a body of max_request_body_size bytes or more: one over the hub's cap
        max_request_body_size=settings["HUB_MAX_BODY_BYTES"] + 1,
        max_request_header_size=64 * 1024,
        channel_timeout=max(1, int(timeout)),  # idle keep-alive connections
        cleanup_interval=max(1, int(timeout / 10)),  # how often the deadline is enforced
        ident="hub",
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
    server = _DeadlineServer(app, map={}, _sock=sock, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo,
                             bind_socket=False)
    server.request_timeout = timeout
    return server


class WaitressWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker process serving with waitress on gunicorn's listening socket."""

    def run(self) -> None:
        from hub.runtime import current

        self.server = make_server(self.wsgi, current().settings, self.sockets[0].sock, self.cfg.threads)
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        self.server.run()  # returns once draining is done, or a signal handler below raises SystemExit

    def _heartbeat(self) -> None:
        """Tell the gunicorn arbiter this process is alive; stop if the arbiter went away."""
        while self.alive:
            self.notify()
            if os.getppid() != self.ppid:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(1.0)

    def handle_exit(self, sig: int, frame: Any) -> None:  # SIGTERM: drain, then stop
        super().handle_exit(sig, frame)
        server = getattr(self, "server", None)
        if server is None:
            raise SystemExit(0)  # not serving yet
        server.drain(max(self.cfg.graceful_timeout - 0.5, 0.5))  # before the arbiter's SIGKILL

    def handle_quit(self, sig: int, frame: Any) -> None:  # SIGQUIT: stop now
        self.alive = False
        raise SystemExit(0)
