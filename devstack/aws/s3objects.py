"""S3 GETs that meet an overwrite or a delete of their object: whole, as on AWS, not a crash.

AWS: a GET reads the object as it was when the GET began, or finds no object if a DELETE came
first. A PUT or DELETE of the same key meanwhile does not cut the GET short: "a read returns
either the old or the new data, never a mix"
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel).

moto keeps an object's bytes in a spooled temporary file and closes that file as soon as the
key is overwritten or deleted. A GET that had already found the key then reads a closed file:
in process (``mock_aws``) boto3 raises ``ValueError: I/O operation on closed file``, and the
server answers 500. A GET or HEAD that checks the key is there just before a DELETE takes it
raises ``KeyError`` (500 from the server). hubmirror's blob index (claims written, polled and
deleted by many copiers at once) meets both whenever two copies of one job share a blob.

:func:`install` lets a replaced or deleted key keep its bytes until nothing refers to it any
more (Python frees it then), so a GET under way finishes with the object it found; and a
lookup that loses the key to a DELETE looks again, finding what a GET after it would.
"""

from __future__ import annotations

from typing import Any

from moto.s3.models import FakeKey, S3Backend

from devstack.aws.motoversion import require_moto

#: how many times a lookup that loses its key to a DELETE looks again, at most
LOOKS = 10

_original_dispose = FakeKey.dispose
_original_get_object = S3Backend.get_object


def _dispose(self: FakeKey, garbage: bool = False) -> None:
    if garbage:  # collected: no request holds it any more
        _original_dispose(self, garbage=True)
    else:  # replaced or deleted: a GET that found it still reads it whole
        self.disposed = True


def _get_object(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
    for _ in range(LOOKS - 1):
        try:
            return _original_get_object(self, *args, **kwargs)
        except KeyError:  # deleted between moto's "is it there" and its read: look again
            continue
    return _original_get_object(self, *args, **kwargs)


def install() -> None:
    require_moto("s3objects")
    FakeKey.dispose = _dispose  # type: ignore[method-assign]
    S3Backend.get_object = _get_object  # type: ignore[method-assign]


def uninstall() -> None:
    FakeKey.dispose = _original_dispose  # type: ignore[method-assign]
    S3Backend.get_object = _original_get_object  # type: ignore[method-assign]
