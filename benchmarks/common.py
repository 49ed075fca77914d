"""What every benchmark shares: the machine's name, a quick model, a free port, a spread over
seeds."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import torch

from claims.data.synthetic import generate_claims
from claims.model.predictor import cpu_has_bf16

CLAIMS = [sys.executable, "-m", "claims"]


def machine() -> tuple[str, str]:
    """(a description for the results, a short name for their file)."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        card = next((card for card in ("H100", "H200") if card in name), "gpu")
        cores = len(os.sched_getaffinity(0))
        return f"{name}, {cores} CPU cores, torch {torch.__version__}", card.lower()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    bf16 = ", native bf16" if cpu_has_bf16() else ""
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores of {model}{bf16}, torch {torch.__version__}", "cpu"


def provenance() -> dict[str, str]:
    """What every result file opens with: the machine, the time and the command that made it."""
    return {
        "machine": machine()[0],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m", f"benchmarks.{Path(sys.argv[0]).stem}", *sys.argv[1:]]),
    }


def seed_spread(runs: Iterable[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per task, the median, lowest and highest score over runs that differ only in a seed."""
    runs = list(runs)
    return {
        task: {
            "median": float(np.median([run[task] for run in runs])),
            "min": min(run[task] for run in runs),
            "max": max(run[task] for run in runs),
        }
        for task in runs[0]
    }


def quick_model(work: Path) -> Path:
    """The default recipe trained for a few steps: its speed is the product's, not its skill."""
    data, model = work / "train.csv", work / "model"
    if not (model / "manifest.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*CLAIMS, "generate", "--n", "2000", "--seed", "5", "--out", str(data)], check=True
        )
        subprocess.run(
            [*CLAIMS, "train", "--data", str(data), "--out", str(model), "--max-steps", "20"],
            check=True,
        )
    return model


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(
    model: Path | None,
    data_dir: Path,
    cpus: set[int] | None = None,
    threads: int | None = None,
    **settings: str,
) -> tuple[subprocess.Popen, str]:
    """`claims serve` pinned to `model` (None: following the registry's champion) in its own
    process, CLAIMS_* settings given by name; returns once it is ready. `auth="false"` is
    `--no-auth`: no variable turns keys off. `cpus`: the cores it may run on, set before it
    starts, so that torch sizes its threads to them; `threads`: torch's threads, as a pod's CPU
    limit would set them."""
    port = free_port()
    no_auth = ["--no-auth"] if settings.pop("auth", "true") == "false" else []
    pinned = [] if model is None else ["--model", str(model)]
    environment = {**os.environ, "CLAIMS_DATA_DIR": str(data_dir)}
    if threads is not None:
        environment["OMP_NUM_THREADS"] = str(threads)
    environment |= {f"CLAIMS_{name.upper()}": value for name, value in settings.items()}
    process = subprocess.Popen(
        [*CLAIMS, "serve", *pinned, "--port", str(port), *no_auth],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=None if cpus is None else partial(os.sched_setaffinity, 0, cpus),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the service did not start")
        time.sleep(0.3)


def claim_requests(count: int, seed: int) -> list[dict]:
    """Synthetic claims as API request bodies (the region is an attribute)."""
    frame = generate_claims(count, seed=seed).drop(
        columns=["claim_type", "severity", "siu_referral"]
    )
    claims = json.loads(frame.to_json(orient="records"))
    for claim in claims:
        claim["attributes"] = {"region": claim.pop("region")}
    return claims
