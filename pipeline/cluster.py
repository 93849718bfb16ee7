"""Attaching to Ray: a local instance by default, an existing cluster with an address."""
from __future__ import annotations

import logging
import os

from thresher.metrics.errors import InputError

TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
"""Where Ray (2.59+) logs "Token authentication is enabled for this Ray cluster" at WARNING, on every ray.init()
that turns token authentication on by default (a new local Ray, or a found one with a token on disk)."""


def quiet_token_notice() -> None:
    """Keep Ray's token-auth notice off every `thresher` command's stderr, --quiet included.

    It reports the default working as intended, not a problem, and only `RAY_AUTH_MODE=disabled`
    (turning the protection off) would otherwise silence it. Only that logger is raised to
    ERROR: a failed authentication is raised as an exception, never merely logged there.
    """
    logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)


class RayUnreachable(InputError):
    """The Ray to join could not be joined: a wrong address, a cluster that is down, or a missing or wrong token."""


AUTH_HINT = ("export RAY_AUTH_MODE=token and give this process the cluster's token (`ray get-auth-token` on the head) "
             "in ~/.ray/auth_token, a file named by RAY_AUTH_TOKEN_PATH, or RAY_AUTH_TOKEN; see docs/cluster.md")


def join_error(address: str | None, exc: BaseException) -> RayUnreachable:
    """One line for a failed ray.init(): Ray's own is a traceback around another traceback, its cause in the middle."""
    where = address or os.environ.get("RAY_ADDRESS") or "the running Ray"
    chain, seen = [], exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain)
    if "AuthenticationError" in text or "InvalidAuthToken" in text:
        return RayUnreachable(f"the Ray cluster at {where} refused this process: its authentication token is missing "
                              f"or wrong; {AUTH_HINT}")
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return RayUnreachable(f"cannot join the Ray cluster at {where} ({first}); check --address (or RAY_ADDRESS) and "
                          "that the cluster is up (`ray status --address ...`)")


def ensure_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = False) -> None:
    """Start or join Ray once per process; an already-initialised Ray is reused as is."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        quiet_token_notice()
        kwargs: dict = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": not quiet}
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus, **kwargs)
        except (ConnectionError, getattr(ray.exceptions, "AuthenticationError", ConnectionError)) as exc:  # Ray >= 2.52
            raise join_error(address, exc) from exc
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    # Our own progress bar reports shards and rows; Ray's per-operator bars would interleave with it.
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def joins_running_ray(address: str | None) -> bool:
    """Whether `ensure_ray(address)` attaches to a Ray that is already running (maybe on other machines).

    True for an initialised Ray, an address, `RAY_ADDRESS` (set inside `ray job submit`) and a
    cluster that `ray start` left on this machine (which `ray.init()` joins); False when Ray
    would start afresh here, on this machine only.
    """
    import ray

    if ray.is_initialized():
        return True
    if address == "local":  # ray.init's word for "start a new one", even where RAY_ADDRESS is set
        return False
    if address or os.environ.get("RAY_ADDRESS"):
        return True
    try:  # how ray.init() itself finds a `ray start` cluster; private, so a Ray without it counts as "start afresh"
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(None) is not None
    except Exception:
        return False


def is_client_address(address: str | None) -> bool:
    """A Ray Client address (ray://...): the driver then runs here, off the cluster, and its files stay here."""
    where = address or os.environ.get("RAY_ADDRESS") or ""
    return where.startswith("ray://")


def alive_nodes() -> list[str]:
    """The ids of the nodes of the attached Ray that are alive now (Ray must be initialised)."""
    import ray

    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
