"""The ``hubmirror`` command: validate, plan, push, run, report, history, restore, schema.

Exit codes (scripts may rely on them):

* 0: done, and what was checked is good (a valid allowlist, a run or plan without failures);
* 1: what was checked failed (an invalid allowlist, a run or a plan with failed items);
* 2: the command could not do its job (usage, an unreadable file, AWS unreachable or refusing);
* 3: the execution ended without a verdict (aborted, timed out, or its report step failed).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hubmirror import __version__
from hubmirror.cli import commands
from hubmirror.cli.output import FORMATS
from hubmirror.cli.stack import AccessError, default_stack_name

EPILOG = """exit codes: 0 good, 1 failed (invalid allowlist, failed items), 2 usage or access error,
3 the execution ended without a verdict. AWS credentials and region come from the usual chain
(AWS_PROFILE, AWS_REGION, ...); the stack's resources from its outputs."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="hubmirror",
        description="Keep a private Amazon ECR registry in sync with an allowlist of public images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"hubmirror {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stack_help = "the deployed stack (default: stack_name in ./samconfig.toml, else hubmirror)"

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary, epilog=EPILOG)

    def with_stack(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--stack", default=None, metavar="NAME", help=stack_help)
        return p

    p = command("validate", "check allowlist files; exit 1 if any breaks a rule")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p = with_stack(command("plan", "preview what an allowlist file would change, and what the next run would do"))
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--format", choices=FORMATS, default="text", help="markdown is for a pull-request comment")
    p.add_argument(
        "--rate-limit-floor",
        type=int,
        default=commands.DEFAULT_FLOOR,
        metavar="N",
        help="upstream pulls a run leaves untouched (the stack's RateLimitFloor; default %(default)s)",
    )
    p = with_stack(command("push", "validate an allowlist file and store it as the stack's new allowlist"))
    p.add_argument("file", type=Path, metavar="FILE")
    p = with_stack(command("run", "start a run; with --wait, show its progress and print its report"))
    p.add_argument("--only", nargs="+", default=[], metavar="IMAGE", help="sync only these images")
    p.add_argument("--force", action="store_true", help="copy or build even what is up to date")
    p.add_argument("--dry-run", action="store_true", help="decide and report, change nothing")
    p.add_argument("--wait", action="store_true", help="wait for the report; exit code follows its verdict")
    p.add_argument("--format", choices=("text", "json"), default="text", help="how --wait prints the report")
    p = with_stack(command("report", "print the latest run's report, or a named run's"))
    p.add_argument("run", nargs="?", metavar="RUN", help="an execution name (default: the latest with a report)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    with_stack(command("history", "list the stored allowlist versions, newest first"))
    p = with_stack(command("restore", "store an earlier allowlist version again as the newest"))
    p.add_argument("version", metavar="VERSION", help="a version id from `hubmirror history`")
    command("schema", "print the allowlist's JSON Schema (for editors: hubmirror schema > allowlist.schema.json)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
        # the AWS CLI and the SDKs of other languages read AWS_REGION; boto3 reads only this one
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    stack = getattr(args, "stack", None) or default_stack_name()
    try:
        match args.command:
            case "validate":
                return commands.validate(args.files)
            case "plan":
                return commands.plan(args.file, stack, args.format, args.rate_limit_floor)
            case "push":
                return commands.push(args.file, stack)
            case "run":
                return commands.run(
                    stack, only=args.only, force=args.force, dry_run=args.dry_run, wait=args.wait, fmt=args.format
                )
            case "report":
                return commands.report(stack, args.run, args.format)
            case "history":
                return commands.history(stack)
            case "restore":
                return commands.restore(args.version, stack)
            case _:
                return commands.schema()
    except AccessError as exc:
        print(f"hubmirror: {exc}", file=sys.stderr)
        return commands.ERROR
    except KeyboardInterrupt:
        print("hubmirror: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
