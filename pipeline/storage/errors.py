"""Storage failures as one line: the URI, the operation, and what is wrong in words a user acts on."""
from __future__ import annotations

import re

from thresher.metrics.errors import InputError, JobFailed


class StorageError(JobFailed, OSError):
    """An operation on storage failed after its retries (throttling that persists, a dropped connection)."""


class StorageAccessError(InputError, OSError):
    """Storage refused or lacks what a job names: wrong credentials, no permission, no such bucket or object."""


class StorageNotFound(StorageAccessError, FileNotFoundError):
    """An object or folder a job names is not there."""


# pyarrow's S3 messages: "... AWS Error SLOW_DOWN during PutObject operation: ..." or, for an answer without a
# body (a HEAD), "... AWS Error UNKNOWN (HTTP status 503) during HeadObject operation: No response body."
_AWS_CODE = re.compile(r"AWS Error (\w+)")
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")
NO_BUCKET = "the bucket does not exist (create it, or check the name)"
NO_OBJECT = "no such object or folder"
_CHECK_KEYS = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials"
_THROTTLE_CODES = ("SLOW_DOWN", "THROTTLING", "THROTTLING_EXCEPTION", "REQUEST_LIMIT_EXCEEDED", "SERVICE_UNAVAILABLE",
                   "TOO_MANY_REQUESTS")


def _reason(exc: BaseException) -> tuple[type[OSError], str]:
    text = str(exc)
    lower = text.lower()
    m = _AWS_CODE.search(text)
    code = m.group(1) if m else ""
    s = _HTTP_STATUS.search(text)
    status = int(s.group(1)) if s else None
    if code == "NO_SUCH_BUCKET" or "bucket does not exist" in lower or "not found. to create buckets" in lower:
        return StorageNotFound, NO_BUCKET
    if isinstance(exc, FileNotFoundError) or code in ("RESOURCE_NOT_FOUND", "NO_SUCH_KEY") or status == 404:
        return StorageNotFound, NO_OBJECT
    if code == "SIGNATURE_DOES_NOT_MATCH":
        return StorageAccessError, ("access denied: the secret key does not match the access key "
                                    f"(SignatureDoesNotMatch); check the credentials ({_CHECK_KEYS})")
    if code == "INVALID_ACCESS_KEY_ID":
        return StorageAccessError, (f"access denied: the store does not know this access key (InvalidAccessKeyId); "
                                    f"check the credentials ({_CHECK_KEYS})")
    if code == "ACCESS_DENIED" or status in (401, 403) or "access denied" in lower or isinstance(exc, PermissionError):
        return StorageAccessError, (f"access denied: check the credentials ({_CHECK_KEYS}) and that they allow "
                                    "this operation")
    if code in _THROTTLE_CODES or status in (429, 503) or "SlowDown" in text:
        return StorageError, "the store kept throttling (503 SlowDown / 429) through every retry; rerun later, or " \
                             "raise --storage-option max_attempts"
    if "curlCode" in text or "Couldn't connect" in text or "Connection refused" in text or code == "NETWORK_CONNECTION":
        return StorageError, ("cannot reach the store (connection refused or reset through every retry); check "
                              "endpoint_override and the network")
    if status is not None and status >= 500:
        return StorageError, f"the store answered HTTP {status} through every retry; rerun later"
    detail = text.splitlines()[0] if text else type(exc).__name__
    return StorageError, detail[:300]


def storage_error(uri: str, operation: str, exc: BaseException, *, bucket_missing: bool = False) -> OSError:
    """`exc` from a backend, as one of our errors: `<uri>: cannot <operation>: <reason>`.

    `bucket_missing`: the caller checked that the bucket is not there (S3 and GCS answer a
    read in a missing bucket like a missing key). One of our own errors comes back as it is.
    """
    if isinstance(exc, (StorageError, StorageAccessError)):
        return exc
    if bucket_missing:
        return StorageNotFound(f"{uri}: cannot {operation}: {NO_BUCKET}")
    cls, reason = _reason(exc)
    return cls(f"{uri}: cannot {operation}: {reason}")
