"""Run the Celery example end to end: worker under ``faultlens run``, producer, warm stop."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python examples/celery_worker", description=__doc__)
    p.add_argument("--jobs", type=int, default=12, help="jobs in the batch (default 12)")
    p.add_argument("--broker", default="redis://127.0.0.1:6379/0", help="Redis URL")
    p.add_argument("--endpoint", help="OTLP endpoint (default: the local journal only)")
    p.add_argument("--service", default="scorer-worker", help="the worker's service name")
    p.add_argument("--journal", default=".faultlens/journal", help="journal directory")
    p.add_argument("--log", default=None, help="worker log file (default: in the journal dir)")
    return p.parse_args(argv)


def worker_command(args: argparse.Namespace, hostname: str) -> list[str]:
    command = [str(BIN / "faultlens"), "run", "--service", args.service, "--journal", args.journal]
    if args.endpoint:
        command += ["--endpoint", args.endpoint]
    return [
        *command,
        "--",
        str(BIN / "celery"),
        "-A",
        "celery_worker.tasks",
        "worker",
        "--pool=prefork",
        "--concurrency=2",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        hostname,
    ]


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited ({proc.returncode}); see {log}")
        time.sleep(0.2)
    raise SystemExit(f"the worker was not ready after {timeout}s; see {log}")


def produce(args: argparse.Namespace, queue: str) -> dict[str, Counter[str]]:
    """Send every job to every task and wait for the results (as a producer service)."""
    import faultlens
    from faultlens.integrations import celery as faultlens_celery

    faultlens.configure(
        service_name=f"{args.service}-producer",
        endpoint=args.endpoint,
        journal=True,
        journal_path=args.journal,
    )
    faultlens_celery.install()  # producer spans: the trace each task's run joins
    from celery import Celery

    from celery_worker.tasks import TASKS

    app = Celery("producer", broker=args.broker, backend=args.broker)
    app.conf.task_default_queue = queue
    sent = [(name, app.send_task(name, args=[job])) for job in range(args.jobs) for name in TASKS]
    states: dict[str, Counter[str]] = {name: Counter() for name in TASKS}
    deadline = time.monotonic() + 120
    for name, result in sent:
        while result.state not in ("SUCCESS", "FAILURE") and time.monotonic() < deadline:
            time.sleep(0.1)
        states[name][result.state] += 1
    faultlens.shutdown()
    return states


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    journal = Path(args.journal).resolve()
    journal.mkdir(parents=True, exist_ok=True)
    args.journal = str(journal)
    log = Path(args.log) if args.log else journal.parent / "celery-worker.log"
    queue = f"scoring-{os.getpid()}"  # this run's own queue: nothing left from another
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTLENS_", "OTEL_"))}
    env |= {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), env.get("PYTHONPATH")])),
        "CELERY_WORKER_BROKER": args.broker,
        "CELERY_WORKER_QUEUE": queue,
        "FAULTLENS_JOURNAL": "true",  # the local journal too, also when exporting to a stack
    }
    sys.path.insert(0, str(EXAMPLES))
    os.environ["CELERY_WORKER_BROKER"] = args.broker
    os.environ["CELERY_WORKER_QUEUE"] = queue
    with log.open("wb") as out:
        worker = subprocess.Popen(
            worker_command(args, f"scoring-{os.getpid()}@%h"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_ready(worker, log)
        print(f"worker ready (pid {worker.pid}, log {log}); sending {args.jobs} jobs")
        states = produce(args, queue)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
        try:
            code = worker.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            code = worker.wait()
    for name, counts in states.items():
        print(f"  {name:22} " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())))
    print(f"worker stopped (exit {code}); journal: {journal}")
    print(f"  faultlens stats --journal {journal} --since 1h")
    return 0 if code == 0 else 1
