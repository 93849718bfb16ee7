"""Where Thresher's files live: local paths and URIs (`s3://`, `gs://`, `hf://`, `memory://`, `file://`).

`at(path_or_uri)` gives a `Location`; everything that lists, opens or writes a file goes
through one. Backends: pyarrow's native S3 and GCS file systems, fsspec (wrapped as a
pyarrow file system) for any other protocol, the local disk as it always was. A new
protocol is a line in `backends`.
"""
from thresher.pipeline.storage.errors import StorageAccessError, StorageError, StorageNotFound, storage_error
from thresher.pipeline.storage.location import Entry, Location, Stat
from thresher.pipeline.storage.options import StorageOptionError, check_options, parse_option_items
from thresher.pipeline.storage.resolve import at, configure, current_options, is_remote, place, split_uri

__all__ = [
    "Entry", "Location", "Stat", "StorageAccessError", "StorageError", "StorageNotFound", "StorageOptionError", "at",
    "check_options", "configure", "current_options", "is_remote", "parse_option_items", "place", "split_uri", "storage_error",
]
