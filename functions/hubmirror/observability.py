"""One Logger, Tracer and Metrics for every handler (Powertools for AWS Lambda)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "hubmirror"
NAMESPACE = "hubmirror"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
