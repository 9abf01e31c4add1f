"""Start one agent detached from whoever asked for it, with OS resource limits.

Run as ``python -m department_agent.launch [limits] -- <serve args>``. It
forks once: the parent prints the child's pid and exits (so the caller can reap
it and is never left with a zombie), the child becomes its own session leader,
applies the limits to itself and execs ``department_agent.serve``. Limits are applied here rather
than in a ``preexec_fn`` because that is unsafe in a multi-threaded caller such
as a Celery worker. Only stdlib is imported so the limits bind before anything
big is loaded. Nothing secret is passed on this command line; the agent's
configuration arrives through the inherited environment.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="department_agent.launch")
    parser.add_argument("--memory-bytes", type=int, default=0, help="RLIMIT_AS; 0 = none")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--cpus", default="", help="comma-separated CPU ids; empty = all")
    parser.add_argument("serve_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.serve_args[:1] == ["--"]:
        args.serve_args = args.serve_args[1:]
    return args


def apply_limits(args: argparse.Namespace) -> None:
    if args.memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory_bytes, args.memory_bytes))
    if args.nice > 0:
        os.nice(args.nice)
    if args.cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})


def become_agent(args: argparse.Namespace) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.setsid()  # own session and process group, so the group can be signalled whole
        os.dup2(2, 1)  # stdout was the pipe to the caller; the agent logs to stderr's file
        apply_limits(args)
        argv = [sys.executable, "-m", "department_agent.serve", *args.serve_args]
        os.execv(sys.executable, argv)  # noqa: S606 - fixed program, no shell involved
    except BaseException as exc:  # an exec failure must not fall back into the parent's code
        print(f"department_agent.launch: cannot start the agent: {exc!r}", file=sys.stderr)
        os._exit(127)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    pid = os.fork()
    if pid == 0:
        become_agent(args)
    print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
