"""``python3 -m hubmirror.runner s3://BUCKET/JOB.json``: run one copy or build job."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from hubmirror.runner.job import run_job


def _stopped(signum: int, _frame: FrameType | None) -> None:
    """CodeBuild stops a build (timeout, StopBuild) with SIGTERM: leave through the job's
    ``finally`` blocks, so its claims are released for the next copier."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python3 -m hubmirror.runner s3://BUCKET/KEY", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, _stopped)
    sys.exit(run_job(sys.argv[1]))
