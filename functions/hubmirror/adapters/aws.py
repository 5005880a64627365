"""boto3 clients built one way: standard retries, and ``AWS_ENDPOINT_URL`` honoured.

botocore reads ``AWS_ENDPOINT_URL`` itself since 1.31; the copy/build job runs on Debian
12's python3-boto3 (botocore 1.29), which does not, so the variable is passed on here.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def client(service: str) -> Any:
    """A boto3 client for ``service`` with hubmirror's retry settings."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client(service, config=BOTO_CONFIG, endpoint_url=endpoint)  # type: ignore[call-overload]
