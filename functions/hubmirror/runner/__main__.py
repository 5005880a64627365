"""``python3 -m hubmirror.runner s3://BUCKET/JOB.json``: run one copy or build job."""

from __future__ import annotations

import sys

from hubmirror.runner.job import run_job

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python3 -m hubmirror.runner s3://BUCKET/KEY", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_job(sys.argv[1]))
