"""Serving benchmark: single-claim requests over loopback, with and without micro-batching.

    python benchmarks/serving.py --model runs/specialist        # 1, 8, 32 and 128 clients

The service runs as `claims serve` in its own process (development mode: no keys), pinned to
the checkpoint; wrk (Debian's package: `apt-get install wrk`) keeps N connections each posting
one claim at a time for `--seconds` per level after a warm-up, both modes on the same claims
in one run, in each precision asked for (fp32, the service's default, and bf16). wrk is C: on
2 cores a Python load generator would take a core from the service.
Reports throughput and p50/p99 latency, writes benchmarks/results/serving-<machine>.json and
regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not this folder: benchmarks/serving.py would shadow `serving`
sys.path.append(str(ROOT / "benchmarks"))

from benchmark_docs import keep  # noqa: E402
from common import claim_requests, machine, provenance, quick_model, start_service  # noqa: E402

LEVELS = (1, 8, 32, 128)


def lua_script(claims: list[dict], folder: Path) -> Path:
    """wrk posts the claims in turn; wrk itself costs the 2 cores next to nothing."""
    bodies = ",".join("[==[" + json.dumps(claim) + "]==]" for claim in claims)
    script = folder / "triage.lua"
    script.write_text(
        f"bodies = {{{bodies}}}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n"
        "  return wrk.format('POST', '/v1/triage', {['Content-Type'] = 'application/json'}, "
        "bodies[(counter % #bodies) + 1])\nend\n"
    )
    return script


def drive(url: str, script: Path, clients: int, seconds: float) -> dict:
    """Closed loop: each connection sends its next claim as soon as the last is answered."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{seconds:g}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        "clients": clients,
        "claims_per_second": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), 1),
        "p50_ms": _milliseconds(re.search(r"\s50%\s+(\S+)", out)[1]),
        "p99_ms": _milliseconds(re.search(r"\s99%\s+(\S+)", out)[1]),
        "errors": sum(
            int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|errors: \D*)(\d+)", out)
        ),
    }


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return round(float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit], 1)


def measure(model: Path, claims: list[dict], precision: str, seconds: float) -> dict:
    """Both modes at every level, in one precision; the ratio and p99 at 32 clients."""
    levels: dict[str, list[dict]] = {}
    for mode in ("one_at_a_time", "micro_batching"):
        with tempfile.TemporaryDirectory() as data_dir:
            script = lua_script(claims, Path(data_dir))
            process, url = start_service(
                model,
                Path(data_dir),
                auth="false",
                micro_batching=str(mode == "micro_batching").lower(),
                rate_limit_per_minute="100000000",
                precision=precision,
            )
            try:
                drive(url, script, 8, 3.0)  # warm-up
                levels[mode] = []
                for clients in LEVELS:
                    result = drive(url, script, clients, seconds)
                    levels[mode].append(result)
                    print(precision, mode, result, flush=True)
            finally:
                process.terminate()
                process.wait(timeout=60)
    at_32 = {mode: next(r for r in rows if r["clients"] == 32) for mode, rows in levels.items()}
    return {
        "levels": levels,
        "speedup_at_32_clients": round(
            at_32["micro_batching"]["claims_per_second"]
            / at_32["one_at_a_time"]["claims_per_second"],
            2,
        ),
        "p99_ms_at_32_clients": at_32["micro_batching"]["p99_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--precision",
        action="append",
        choices=["fp32", "bf16"],
        help="the service's CLAIMS_PRECISION, repeatable; default: fp32 (the service's "
        "default), then bf16",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "throughput")
    arguments = parser.parse_args()
    model = arguments.model or quick_model(arguments.work)
    claims = claim_requests(512, seed=91)
    if shutil.which("wrk") is None:
        sys.exit("needs wrk, the HTTP load generator: apt-get install wrk")
    precisions = arguments.precision or ["fp32", "bf16"]
    kind = machine()[1]
    result = {
        **provenance(),
        "seconds_per_level": arguments.seconds,
        "precisions": {
            precision: measure(model, claims, precision, arguments.seconds)
            for precision in precisions
        },
    }
    path = keep("serving", kind, result)
    print(f"wrote {path} and docs/benchmarks.md")


if __name__ == "__main__":
    main()
