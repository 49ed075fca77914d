#!/usr/bin/env bash
# The GPU benchmarks in one go, each within a time limit, for a GPU machine lent for minutes:
#
#     bash benchmarks/gpu.sh [MODEL]      # MODEL: a checkpoint to score with (runs/demo/specialist)
#
# First what the CPU side can do (the preparing processes of `claims score` and the boosted
# partner's fit depend on it): its cores, any cgroup quota, and how a busy loop scales from one
# process to one per core. Then `benchmarks/training_time.py` on the workers' compensation file
# (../shared/datasets/workers_comp/claims.csv.gz) and `benchmarks/throughput.py` on a million
# claims of about 80 tokens. Both keep their figures in benchmarks/results/ (the throughput
# benchmark after every round), so a run stopped by its limit still leaves what it measured.
# Limits in seconds: TRAIN_LIMIT (240), THROUGHPUT_LIMIT (330).
set -u
cd "$(dirname "$0")/.."
model=${1:-runs/demo/specialist}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "CPUs: $(nproc); cgroup quota: $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo none)"
python3 - <<'EOF'
"""A fixed busy loop in 1 process, then in one process per CPU: the speed-up the pool can get."""
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor


def spin(_: int) -> None:
    total = 0
    for i in range(20_000_000):
        total += i


if __name__ == "__main__":
    cores = len(os.sched_getaffinity(0))
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(spin, range(cores)))  # start every process first
        seconds = {}
        for processes in (1, cores):
            started = time.perf_counter()
            list(pool.map(spin, range(processes)))
            seconds[processes] = time.perf_counter() - started
    speedup = cores * seconds[1] / seconds[cores]
    print(f"busy loop: {cores} processes do {speedup:.1f} times the work of one")
EOF

timeout "${TRAIN_LIMIT:-240}" python3 -m benchmarks.training_time \
    --data ../shared/datasets/workers_comp/claims.csv.gz \
    --config benchmarks/configs/workers_comp.toml --name workers_comp
echo "training_time.py: exit $?"
timeout "${THROUGHPUT_LIMIT:-330}" python3 -m benchmarks.throughput --model "$model" \
    --rows 1000000 --naive-rows 100000 --tokens 80
echo "throughput.py: exit $?"
