"""`scn serve --cluster ray`: the same service as a Ray Serve application.

Two deployments:

- ``ScnEngine``: the replicas holding the engines. Each loads the preloaded models at start
  (a replica is healthy only once they are loaded), keeps one `LocalModels` for its life and
  runs one restoration at a time (``max_ongoing_requests=1``), streaming its tile progress
  back to the caller; the cores of a replica are its engines' threads.
- ``ScnIngress``: one replica running the unchanged Starlette app (routes, token, limits,
  jobs, metrics, web page) behind Ray Serve's HTTP proxy. Its worker pool has one worker per
  engine replica, and each worker's `ModelHost` is a `ReplicaModels`: a handle that sends
  the request's bytes to an engine replica and relays its progress. The bounded queue, 429s,
  speed-based timeouts, jobs and cancellation are the single-process service's own.

An image's bytes are decoded, restored and encoded on the replica by the same
`restore_upload` as in one process, so the answer is the same bytes. Ray is optional:
``pip install 'scn-deploy[ray]'``.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from scn_deploy.errors import ConfigError
from scn_deploy.serve.config import ServeConfig
from scn_deploy.serve.params import RestorationParams
from scn_deploy.serve.restoration import Restored
from scn_deploy.serve.workers import Cancelled, Catalog, LocalModels, ModelKey, Warmup

log = logging.getLogger("scn.serve")

RAY_SERVE_HINT = "scn serve --cluster ray needs Ray Serve: pip install 'scn-deploy[ray]'"
#: The Ray Serve application's name (its deployments are ScnEngine and ScnIngress).
APP_NAME = "scn"
ENGINE_DEPLOYMENT = "ScnEngine"
INGRESS_DEPLOYMENT = "ScnIngress"
#: Requests the ingress replica takes at once beyond the queue and the workers (status
#: polls, /metrics, the web page): the service's own limits answer 429 before Ray's do.
INGRESS_HEADROOM = 64


@dataclass(frozen=True)
class RayServeOptions:
    """Where and how wide to serve.

    Attributes:
        address: Ray address ("auto" for a running cluster, "ray://host:10001" for a remote
            one); None starts a local Ray instance.
        replicas: engine replicas (default: the cluster's CPUs / cpus_per_replica, at least 1).
        cpus_per_replica: CPU threads each replica's engines use (Ray reserves as many).
        gpus_per_replica: GPUs each replica reserves (0: CPU engines).
    """

    address: str | None = None
    replicas: int | None = None
    cpus_per_replica: int = 2
    gpus_per_replica: float = 0.0


class EngineReplica:
    """One engine replica: the preloaded models, kept for the replica's life."""

    def __init__(self, config: ServeConfig, threads: int) -> None:
        from scn_deploy.engines.registry import torch_available

        if torch_available():
            import torch

            torch.set_num_threads(threads)
        engine = replace(config.engine, threads=config.engine.threads or threads)
        self.host = LocalModels(Catalog(), engine, config)
        self.warmups: dict[ModelKey, Warmup] = {}
        for task, scale in config.preload:  # loaded before the replica reports healthy
            key = (task, scale, config.fast, None)
            warm = self.host.prepare(key)
            assert warm is not None
            self.warmups[key] = warm

    def warm(self, key: ModelKey) -> Warmup:
        """Load ``key``'s models here (once); their warm-up seconds."""
        warm = self.host.prepare(key)
        if warm is not None:
            self.warmups[key] = warm
        return self.warmups[key]

    def restore(
        self, key: ModelKey, params: RestorationParams, data: bytes
    ) -> Iterator[tuple[Any, ...]]:
        """Stream ("tile", done, total) events, then ("done", Restored) or ("error", exc).
        The restoration runs on a thread of its own; when the caller stops reading (the
        request was cancelled), it stops at its next tile."""
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        stop = threading.Event()

        def on_tile(done: int, total: int) -> None:
            if stop.is_set():
                raise Cancelled("disconnected")
            events.put(("tile", done, total))

        def run() -> None:
            try:
                result = self.host.restore(key, params, data, on_tile)
            except BaseException as exc:  # relayed to the ingress, which answers for it
                events.put(("error", exc))
            else:
                events.put(("done", result))

        thread = threading.Thread(target=run, name="scn-replica-restore", daemon=True)
        thread.start()
        try:
            while True:
                event = events.get()
                yield event
                if event[0] != "tile":
                    return
        finally:
            stop.set()
            thread.join()


class ReplicaModels:
    """A worker's `ModelHost` on the engine replicas (through a Ray Serve handle)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.prepared: set[ModelKey] = set()

    def prepare(self, key: ModelKey) -> Warmup | None:
        if key in self.prepared:
            return None
        warm = self.handle.warm.remote(key).result()
        self.prepared.add(key)
        return warm

    def restore(
        self,
        key: ModelKey,
        params: RestorationParams,
        data: bytes,
        on_tile: Callable[[int, int], None] | None,
    ) -> Restored:
        stream = self.handle.options(stream=True).restore.remote(key, params, data)
        try:
            for event in stream:
                if event[0] == "tile":
                    if on_tile is not None:
                        on_tile(event[1], event[2])
                elif event[0] == "done":
                    return event[1]
                else:
                    raise event[1]
        except Cancelled:
            stream.cancel()
            raise
        raise RuntimeError("the engine replica ended without a result")


def build_application(config: ServeConfig, options: RayServeOptions, replicas: int) -> Any:
    """The Ray Serve application: ``replicas`` engine replicas behind one ingress replica."""
    from ray import serve

    threads = options.cpus_per_replica
    engine = serve.deployment(
        EngineReplica,
        name=ENGINE_DEPLOYMENT,
        num_replicas=replicas,
        max_ongoing_requests=1,
        ray_actor_options={"num_cpus": threads, "num_gpus": options.gpus_per_replica},
        graceful_shutdown_timeout_s=config.shutdown_seconds,
    )
    ingress_config = replace(config, workers=replicas)

    def build_app() -> Any:
        from scn_deploy.serve.app import create_app

        handle = serve.get_deployment_handle(ENGINE_DEPLOYMENT, app_name=APP_NAME)
        return create_app(ingress_config, hosts=lambda: ReplicaModels(handle))

    class ScnIngress:
        def __init__(self, engine_handle: Any) -> None:
            self.engine_handle = engine_handle  # binds the engines into the application

    ingress = serve.deployment(
        serve.ingress(build_app)(ScnIngress),
        name=INGRESS_DEPLOYMENT,
        num_replicas=1,
        max_ongoing_requests=config.queue + replicas + INGRESS_HEADROOM,
        ray_actor_options={"num_cpus": 0},
        graceful_shutdown_timeout_s=config.shutdown_seconds,
    )
    return ingress.bind(engine.bind(config, threads))


def serve_on_ray(config: ServeConfig, options: RayServeOptions) -> None:
    """Run the service on Ray Serve until SIGTERM / Ctrl-C, then shut it down gracefully
    (the proxy stops taking requests, the replicas finish theirs) and return."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise ConfigError(RAY_SERVE_HINT) from None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    stop = threading.Event()
    ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
    for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which installs its own
        signal.signal(sig, lambda *_: stop.set())
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        replicas = options.replicas or max(1, cpus // options.cpus_per_replica)
        if replicas * options.cpus_per_replica > cpus:
            raise ConfigError(
                f"{replicas} replicas x {options.cpus_per_replica} CPUs need "
                f"{replicas * options.cpus_per_replica} CPUs; the cluster has {cpus}"
            )
        serve.start(http_options={"host": config.host, "port": config.port})
        log.info("deploying %d engine replica(s) of %d CPU(s)", replicas, options.cpus_per_replica)
        serve.run(build_application(config, options, replicas), name=APP_NAME, route_prefix="/")
        log.info("serving on http://%s:%d (Ray Serve)", config.host, config.port)
        while not stop.wait(0.5):
            pass
        log.info("stopping: finishing the requests in flight")
    finally:
        try:
            # Deleting the application first lets its replicas drain (each waits for the
            # requests it holds, up to shutdown_seconds) while the HTTP proxy, which holds the
            # clients' connections, still runs; serve.shutdown() alone stops the proxy at once.
            serve.delete(APP_NAME)
            serve.shutdown()
        finally:
            ray.shutdown()
