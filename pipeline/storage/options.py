"""Storage options: the settings a user gives for object stores, checked, with no secret among them.

Options come from `--storage-option KEY=VALUE` and a job spec's `storage:` section and
apply to every URI of one job. Credentials never do: they come from each backend's
standard provider chain (environment variables, config files, instance roles), so they
are never typed on a command line, written in a spec, pickled into a task or saved in a
job's files. An option naming a credential is refused with what to do instead.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from thresher.metrics.errors import InputError

# Options per backend, with the kind each value must have.
S3_OPTIONS: dict[str, type] = {
    "endpoint_override": str, "scheme": str, "region": str, "anonymous": bool, "request_timeout": float,
    "connect_timeout": float, "force_virtual_addressing": bool, "allow_bucket_creation": bool, "max_attempts": int,
    "role_arn": str, "tls_ca_file_path": str,
}
GCS_OPTIONS: dict[str, type] = {
    "endpoint_override": str, "scheme": str, "anonymous": bool, "project_id": str, "retry_time_limit": float,
    "default_bucket_location": str,
}
# Names that carry a secret in some backend: refused everywhere, the provider chain holds them.
SECRET_NAMES = frozenset({"access_key", "secret_key", "session_token", "key", "secret", "token", "password",
                          "access_token", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                          "credentials", "external_id"})
DEFAULT_MAX_ATTEMPTS = 8


class StorageOptionError(InputError):
    """A storage option that is unknown, of the wrong kind, or a credential."""


def _secret_advice(name: str) -> str:
    return (f"storage option {name!r} would put a credential on the command line or in a spec; give credentials the "
            "standard way instead (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or AWS_PROFILE, "
            "~/.aws/credentials, an instance role; GOOGLE_APPLICATION_CREDENTIALS for gs://)")


def _as_kind(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise StorageOptionError(f"storage option {name}={value!r}: expected true or false")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise StorageOptionError(f"storage option {name}={value!r}: expected a {kind.__name__}") from None


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options as a plain sorted dict, each value of its kind; unknown names and credentials refused.

    Bare names are the S3 and GCS options (each backend takes those it knows); an option of
    another protocol is written `PROTOCOL.NAME` (`hf.revision=main`) and goes to that
    protocol's fsspec file system only. Credentials are refused for every protocol.
    """
    checked: dict[str, Any] = {}
    for name, value in (options or {}).items():
        if not isinstance(name, str) or not name:
            raise StorageOptionError(f"storage option name {name!r} is not a name")
        if name.lower().rsplit(".", 1)[-1] in SECRET_NAMES:
            raise StorageOptionError(_secret_advice(name))
        kind = S3_OPTIONS.get(name) or GCS_OPTIONS.get(name)
        if kind is None and "." not in name:
            raise StorageOptionError(f"unknown storage option {name!r} (s3:// and gs:// take: "
                                     f"{', '.join(sorted(set(S3_OPTIONS) | set(GCS_OPTIONS)))}; another protocol's "
                                     "option is written PROTOCOL.NAME, for example hf.revision=main)")
        checked[name] = _as_kind(name, value, kind) if kind else value
    return dict(sorted(checked.items()))


def parse_option_items(items: Iterable[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` strings (from `--storage-option`) as checked options."""
    raw: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise StorageOptionError(f"--storage-option {item!r} must look like KEY=VALUE (for example "
                                     "endpoint_override=http://127.0.0.1:8333)")
        key, value = item.split("=", 1)
        raw[key.strip()] = value.strip()
    return check_options(raw)


def fsspec_settings(protocol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for an fsspec protocol: the job's `PROTOCOL.NAME` options, names stripped."""
    prefix = protocol + "."
    return {k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix)}


def split_endpoint(endpoint: str) -> tuple[str, str | None]:
    """`http://host:port` -> (`host:port`, `http`); an endpoint without a scheme keeps scheme None."""
    for scheme in ("http", "https"):
        if endpoint.startswith(f"{scheme}://"):
            return endpoint[len(scheme) + 3:].rstrip("/"), scheme
    return endpoint.rstrip("/"), None


def s3_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `pyarrow.fs.S3FileSystem` from checked options and the standard environment.

    pyarrow ignores `AWS_ENDPOINT_URL[_S3]`, which the AWS SDKs read; it is honoured here
    so one environment variable points every node of a cluster at the same store.
    """
    kwargs = {k: v for k, v in options.items() if k in S3_OPTIONS}
    endpoint = kwargs.pop("endpoint_override", None) or os.environ.get("AWS_ENDPOINT_URL_S3") \
        or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        host, scheme = split_endpoint(endpoint)
        kwargs["endpoint_override"] = host
        if scheme and "scheme" not in kwargs:
            kwargs["scheme"] = scheme
    if "region" not in kwargs and (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        kwargs["region"] = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if "region" not in kwargs and endpoint:
        kwargs["region"] = "us-east-1"  # a custom endpoint (MinIO, SeaweedFS, ...) answers to the default region
    kwargs["max_attempts"] = kwargs.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    return kwargs


def gcs_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `pyarrow.fs.GcsFileSystem`: the GCS options among the job's."""
    kwargs = {k: v for k, v in options.items() if k in GCS_OPTIONS}
    if "endpoint_override" in kwargs:
        host, scheme = split_endpoint(kwargs["endpoint_override"])
        kwargs["endpoint_override"] = host
        if scheme and "scheme" not in kwargs:
            kwargs["scheme"] = scheme
    return kwargs
