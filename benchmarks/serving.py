"""Serving benchmark: single-claim requests over loopback, with and without micro-batching.

    python -m benchmarks.serving --model runs/specialist        # 1, 8, 32 and 128 clients

The service runs as `claims serve` in its own process (development mode: no keys), pinned to
the checkpoint, once per mode, all up at once: one pass per request, one at a time on every
core (one-at-a-time inference, the goal's reference), and micro-batching, each also in two
inference lanes of one core each (`CLAIMS_INFERENCE_LANES=2`). wrk (Debian's package:
`apt-get install wrk`) keeps N connections each posting one claim at a time for `--seconds`
per level after a warm-up, to each mode in turn, on the same claims, for `--rounds` rounds, in
each precision asked for (fp32, the service's default, and bf16). wrk is C: on 2 cores a Python
load generator would take a core from the service.
Reports median throughput and p50/p99 latency over the rounds, writes
benchmarks/results/serving-<machine>.json and regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from benchmarks.benchmark_docs import keep
from benchmarks.common import claim_requests, machine, provenance, quick_model, start_service

ROOT = Path(__file__).resolve().parents[1]

LEVELS = (1, 8, 32, 128)
MODES = {  # each a service up at once, by its CLAIMS_* settings; the rest are the defaults
    "one_at_a_time": {"micro_batching": "false"},  # one pass at a time: the goal's reference
    "micro_batching": {"micro_batching": "true"},
    "unbatched_2_lanes": {"micro_batching": "false", "inference_lanes": "2"},
    "micro_batching_2_lanes": {"micro_batching": "true", "inference_lanes": "2"},
}


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


def drain(url: str, claim: dict) -> None:
    """Returns once the service has answered what wrk left queued when it stopped: one more
    claim, answered after them. Otherwise that backlog would run into the other service's
    measurement, and two services' OpenMP teams on 2 cores slow each other tenfold."""
    httpx.post(f"{url}/v1/triage", json=claim, timeout=300).raise_for_status()


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return round(float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit], 1)


def measure(model: Path, claims: list[dict], precision: str, seconds: float, rounds: int) -> dict:
    """Every mode at every level, in one precision, side by side: the services run at once (an
    idle one costs nothing), and each round drives each in turn at each level, starting from
    the next mode every round, so the machine's drift over a run falls on all. Medians over the
    rounds; at 32 clients the median of the rounds' ratios and the median p99."""
    with tempfile.TemporaryDirectory() as data_dir, contextlib.ExitStack() as stack:
        services = {}
        for mode, settings in MODES.items():
            folder = Path(data_dir) / mode
            folder.mkdir()
            process, url = start_service(
                model,
                folder,
                auth="false",
                rate_limit_per_minute="100000000",
                precision=precision,
                **settings,
            )
            stack.callback(_stop, process)
            services[mode] = url
        script = lua_script(claims, Path(data_dir))
        for url in services.values():
            drive(url, script, 8, 3.0)  # warm-up
            drain(url, claims[0])
        runs: dict[str, dict[int, list[dict]]] = {mode: {c: [] for c in LEVELS} for mode in MODES}
        order = list(services.items())
        for turn in range(rounds):
            for clients in LEVELS:
                for mode, url in order[turn % len(order) :] + order[: turn % len(order)]:
                    result = drive(url, script, clients, seconds)
                    drain(url, claims[0])
                    runs[mode][clients].append(result)
                    print(precision, f"round {turn + 1}", mode, result, flush=True)
    levels = {mode: [_median(runs[mode][c]) for c in LEVELS] for mode in MODES}
    return {
        "levels": levels,
        "rounds": {
            mode: {str(c): rows for c, rows in by_level.items()} for mode, by_level in runs.items()
        },
        "at_32_clients": {
            batched: {
                "speedup": _speedup(runs[batched], runs["one_at_a_time"]),
                "unbatched": unbatched,  # a pass per request in the same lanes
                "speedup_over_unbatched": _speedup(runs[batched], runs[unbatched]),
                "p99_ms": next(r for r in levels[batched] if r["clients"] == 32)["p99_ms"],
            }
            for batched, unbatched in (
                ("micro_batching", "one_at_a_time"),
                ("micro_batching_2_lanes", "unbatched_2_lanes"),
            )
        },
    }


def _speedup(runs: dict[int, list[dict]], reference: dict[int, list[dict]]) -> float:
    """Claims per second at 32 clients over `reference`'s: the median of each round's own
    ratio."""
    paired = zip(runs[32], reference[32], strict=True)
    return round(
        statistics.median(m["claims_per_second"] / o["claims_per_second"] for m, o in paired), 2
    )


def _median(results: list[dict]) -> dict:
    """Per figure, the median over the rounds; errors are summed."""
    return {
        "clients": results[0]["clients"],
        **{
            key: round(statistics.median(r[key] for r in results), 1)
            for key in ("claims_per_second", "p50_ms", "p99_ms")
        },
        "errors": sum(r["errors"] for r in results),
    }


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--seconds", type=float, default=10.0, help="per level and round")
    parser.add_argument("--rounds", type=int, default=3, help="medians over this many")
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
        "modes": MODES,
        "rounds": arguments.rounds,
        "precisions": {
            precision: measure(model, claims, precision, arguments.seconds, arguments.rounds)
            for precision in precisions
        },
    }
    path = keep("serving", kind, result)
    print(f"wrote {path} and docs/benchmarks.md")


if __name__ == "__main__":
    main()
