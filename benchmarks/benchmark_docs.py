"""docs/benchmarks.md, drawn from the results every benchmark keeps in benchmarks/results/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from schemas.report import Interval

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
ABLATION = "specialist_frozen_encoder"
MEMBER_PREFIX = "specialist."  # the specialist's stack members, scored alone: not baselines
# Targets the project set itself (issue "A specialist that beats every baseline"), by dataset.
GOALS = {
    "workers_comp": {"large_loss": 0.920, "deteriorating": 0.875, "severity_band": 0.735},
}
# Leads the specialist must hold, paired 95% interval wholly above zero (issue "Fine-tuning that
# earns its keep"): dataset -> task -> system -> smallest lead.
LEAD_GOALS = {
    "osha_severe_injuries": {"event": {"tfidf_logreg": 0.03, ABLATION: 0.02}},
}
MAX_BINARY_ECE = 0.03


def keep(kind: str, machine: str, result: dict) -> Path:
    """Writes a benchmark's result, then redraws docs/benchmarks.md from every result kept."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}-{machine}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    render()
    return path


def _results(kind: str) -> Iterator[tuple[str, dict]]:
    """(name, result) of every result of one kind kept, in name order."""
    for path in sorted(RESULTS.glob(f"{kind}-*.json")):
        yield path.stem.removeprefix(f"{kind}-"), json.loads(path.read_text())


def _save(figure, name: str) -> Path:  # type: ignore[no-untyped-def]
    if not figure.legends:  # a figure-wide legend has laid out its own room
        figure.tight_layout()
    path = DOCS / "img" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)  # a benchmark renders after every round: figures would pile up
    return path


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(result: dict, name: str) -> Path:
    plt = _pyplot()
    tasks = list(result["primary_metrics"])
    systems = list(result["systems"])
    figure, axes = plt.subplots(1, len(tasks), figsize=(5.6 * len(tasks), 3.8), sharey=False)
    for axis, task in zip(list(axes) if len(tasks) > 1 else [axes], tasks, strict=True):
        metric = result["primary_metrics"][task]
        values = [result["systems"][s]["metrics"][task][metric] for s in systems]
        intervals = [result["systems"][s]["intervals"][task] for s in systems]
        spread = [
            [value - i["low"] for value, i in zip(values, intervals, strict=True)],
            [i["high"] - value for value, i in zip(values, intervals, strict=True)],
        ]
        colours = ["tab:green" if s == "specialist" else "tab:grey" for s in systems]
        axis.barh(systems, values, color=colours, xerr=spread, capsize=2)
        for row, (value, interval) in enumerate(zip(values, intervals, strict=True)):
            axis.text(interval["high"], row, f"  {value:.3f}", va="center", fontsize=8)
        axis.set_title(f"{task} ({metric})")
        axis.set_xlim(0.0, 1.12)  # from zero, so bar lengths compare honestly
        axis.invert_yaxis()
    return _save(figure, f"accuracy-{name}")


def table(result: dict) -> str:
    tasks = result["primary_metrics"]
    columns = [f"{t} {m}" for t, m in tasks.items()] + [f"{t} ECE" for t in tasks]
    columns += ["fit s", "trainable params"]
    lines = ["| system | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for system, values in result["systems"].items():
        metrics = values["metrics"]
        cells = [f"{metrics[t][m]:.3f}" for t, m in tasks.items()]
        cells += [f"{metrics[t]['ece']:.3f}" for t in tasks]
        seconds, parameters = values.get("fit_seconds"), values.get("trainable_parameters")
        cells += [
            "" if seconds is None else f"{seconds:.0f}",
            f"{parameters:,}" if parameters else "",
        ]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(result: dict, name: str) -> str:
    """Each goal beside the specialist's figure and the best baseline's: met or not, plainly,
    with how far sampling alone could move each."""
    if name not in GOALS:
        return ""
    systems = result["systems"]
    lines = [
        "| task | metric | goal | specialist (95% interval) | best baseline "
        "| specialist's lead over it (95%) | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, goal in GOALS[name].items():
        metric = result["primary_metrics"][task]
        specialist = systems["specialist"]
        ours = specialist["metrics"][task][metric]
        baselines = {s: v["metrics"][task][metric] for s, v in _baselines(systems).items()}
        best = max(baselines, key=lambda system: baselines[system])
        met = ours >= goal and ours > baselines[best]
        lines.append(
            f"| {task} | {metric} | >= {goal:.3f} | {ours:.3f} "
            f"{_bracketed(specialist['intervals'][task])} | {baselines[best]:.3f} ({best}) "
            f"| {_bracketed(systems[best]['specialist_lead'][task], signed=True)} "
            f"| {'yes' if met else 'no'} |"
        )
    return (
        "Goals (the specialist must reach the goal and beat every baseline; met is judged on "
        "the figures themselves, as the goals are set):\n\n" + "\n".join(lines) + "\n\n"
    )


def _baselines(systems: dict) -> dict:
    return {
        s: v
        for s, v in systems.items()
        if s not in ("specialist", ABLATION) and not s.startswith(MEMBER_PREFIX)
    }


def lead_goals(result: dict, name: str) -> str:
    """Each lead goal with the paired lead, and per task whether the specialist is at least
    the best baseline."""
    systems, metrics = result["systems"], result["primary_metrics"]
    lines = [
        "| task | over | lead goal | lead (95% interval) | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for task, rivals in LEAD_GOALS.get(name, {}).items():
        for rival, goal in rivals.items():
            interval = systems[rival]["specialist_lead"][task]
            metric = metrics[task]
            lead = (
                systems["specialist"]["metrics"][task][metric]
                - systems[rival]["metrics"][task][metric]
            )
            met = lead >= goal and interval["low"] > 0
            lines.append(
                f"| {task} | {rival} | >= {goal:+.3f} | {lead:+.3f} "
                f"{_bracketed(interval, signed=True)} "
                f"| {'yes' if met else 'no'} |"
            )
    for task, metric in metrics.items():
        ours = systems["specialist"]["metrics"][task][metric]
        scores = {s: v["metrics"][task][metric] for s, v in _baselines(systems).items()}
        best = max(scores, key=lambda system: scores[system])
        lines.append(
            f"| {task} | best baseline ({best}) | >= 0 | {ours - scores[best]:+.3f} "
            f"{_bracketed(systems[best]['specialist_lead'][task], signed=True)} "
            f"| {'yes' if ours >= scores[best] else 'no'} |"
        )
    return "Goals:\n\n" + "\n".join(lines) + "\n\n"


def leads(result: dict) -> str:
    """The specialist minus each system, paired on the same resamples of the held-out claims."""
    tasks = result["primary_metrics"]
    lines = ["| specialist minus | " + " | ".join(tasks) + " |", "|" + " --- |" * (len(tasks) + 1)]
    for system, values in result["systems"].items():
        if system != "specialist":
            cells = [_bracketed(values["specialist_lead"][t], signed=True) for t in tasks]
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return (
        f"The specialist's lead over each system, 95% intervals from "
        f"{result['bootstrap_resamples']:,} bootstrap resamples of the held-out claims, every "
        "system scored on the same resamples (wholly above zero: ahead beyond sampling error; "
        "across zero: not told apart on these claims):\n\n" + "\n".join(lines)
    )


def _bracketed(interval: dict, signed: bool = False) -> str:
    return Interval.model_validate(interval).bracketed(signed)


def accuracy_section() -> str:
    sections = []
    for name, result in _results("accuracy"):
        plot_accuracy(result, name)
        binary = [t for t, m in result["primary_metrics"].items() if m == "auc"]
        extra = ""
        if binary:
            rows = [
                f"| {s} | "
                + " | ".join(f"{v['metrics'][t]['average_precision']:.3f}" for t in binary)
                + " |"
                for s, v in result["systems"].items()
            ]
            extra = (
                "\n\nAverage precision (binary tasks):\n\n| system | "
                + " | ".join(binary)
                + " |\n|"
                + " --- |" * (len(binary) + 1)
                + "\n"
                + "\n".join(rows)
            )
        sections.append(
            f"### {name}\n\n{goals(result, name)}"
            f"{lead_goals(result, name) if name in LEAD_GOALS else ''}"
            f"`{result['dataset']}`, {result['test_rows']:,} held-out claims; "
            f"{result['machine']}; {result['created_at']}. Specialist "
            f"{result['model_version']} ({result['systems']['specialist']['strategy']}).\n\n"
            f"{table(result)}{extra}\n\n{leads(result)}\n\n"
            f"![{name}](img/accuracy-{name}.png)\n"
        )
    return (
        "## Accuracy\n\nMade by `benchmarks/accuracy.py`; raw figures in "
        "`benchmarks/results/accuracy-*.json`. Every system is scored on the same held-out "
        "claims; baselines are fitted on the same development rows the specialist trained "
        "on. Fit seconds on the machine named; whiskers in the plots are 95% bootstrap "
        "intervals.\n\n" + "\n".join(sections)
    )


def _spread(figures: dict) -> str:
    return f"{figures['median']:.3f} [{figures['min']:.3f}, {figures['max']:.3f}]"


def seed_rows(result: dict) -> tuple[dict[str, dict], dict[str, dict[str, float]]]:
    """(system -> task -> median, min and max over seeds; system -> task -> one fit's figure)
    of a seed result: the boosting members', or the specialists' beside baselines fitted once."""
    if "specialists" not in result:
        return result["summary"], {}
    spreads = {f"specialist, {base}": s for base, s in result["summary"].items()}
    return spreads, result["baselines"]


def plot_seeds(result: dict, name: str) -> Path:
    """Median and range over seeds per system, and the best baseline's one run: the others
    (zero-shot far below) would squeeze the ranges out of sight; the table has them all."""
    plt = _pyplot()
    spreads, single = seed_rows(result)
    tasks = list(next(iter(spreads.values())))
    rows = [*spreads, *(["best baseline, one run"] if single else [])]
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 0.9 + 0.45 * len(rows)))
    axes = list(axes) if len(tasks) > 1 else [axes]
    for axis, task in zip(axes, tasks, strict=True):
        for row, figures in enumerate(spreads[system][task] for system in spreads):
            axis.errorbar(
                figures["median"],
                row,
                xerr=[[figures["median"] - figures["min"]], [figures["max"] - figures["median"]]],
                fmt="o",
                color="tab:green",
                capsize=3,
            )
        if single:
            best = max(single, key=lambda system: single[system][task])
            axis.plot(single[best][task], len(spreads), "o", color="tab:grey")
            axis.annotate(f" {best}", (single[best][task], len(spreads)), fontsize=8, va="center")
        axis.set_yticks(range(len(rows)), rows if axis is axes[0] else [""] * len(rows))
        axis.set_ylim(len(rows) - 0.5, -0.5)
        axis.margins(x=0.2)  # room for the baseline's name
        axis.set_title(task)
    return _save(figure, name)


def seeds_section() -> str:
    """Each seed result: how far a system moves when nothing but its seed changes."""
    sections = []
    for kind in ("boosting-seeds", "specialist-seeds"):
        for name, result in _results(kind):
            plot_seeds(result, f"{kind}-{name}")
            spreads, single = seed_rows(result)
            tasks = list(next(iter(spreads.values())))
            lines = [
                "| system | " + " | ".join(tasks) + " |",
                "|" + " --- |" * (len(tasks) + 1),
                *(
                    f"| {system} | " + " | ".join(_spread(s[task]) for task in tasks) + " |"
                    for system, s in spreads.items()
                ),
                *(
                    f"| {system} (one run) | "
                    + " | ".join(f"{s[task]:.3f}" for task in tasks)
                    + " |"
                    for system, s in single.items()
                ),
            ]
            seeds = result["seeds"]
            seeds = f"0-{seeds - 1}" if isinstance(seeds, int) else ", ".join(map(str, seeds))
            once = (
                f" The baselines run once, with the first fit's seed ({result['seeds'][0]})."
                if single
                else ""
            )
            sections.append(
                f"### {kind}: {name}\n\n`{result['dataset']}`, {result['test_rows']:,} held-out "
                f"claims; seeds {seeds}; {result['machine']}; {result['created_at']}; "
                f"`{result['command']}`. Median [min, max] over the seeds.{once}\n\n"
                + "\n".join(lines)
                + f"\n\n![{kind} {name}](img/{kind}-{name}.png)\n"
            )
    if not sections:
        return ""
    return (
        "## Seed spread\n\nMade by `benchmarks/boosting_seeds.py` (the two boosting recipes "
        "alone) and `benchmarks/specialist_seeds.py` (the whole specialist, per base model): "
        "the same development and held-out claims, nothing changed but the seed. Macro-F1 of "
        "multiclass tasks, AUC of yes/no tasks; raw figures in "
        "`benchmarks/results/*-seeds-*.json`. A gap between two systems in one run means "
        "little where it is smaller than this spread.\n\n" + "\n".join(sections)
    )


def _best(figures: dict[str, float]) -> str:
    """The highest of system -> figure, with its system's name."""
    system = max(figures, key=lambda name: figures[name])
    return f"{figures[system]:.3f} {system}"


def beside_ceiling(sha256: str) -> dict[str, dict[str, str]]:
    """column -> task -> figure: every kept result on the same data file, the specialist (and
    in a seed result, each base model's median and range) beside the best baseline."""
    columns: dict[str, dict[str, str]] = {}
    for name, result in _results("accuracy"):
        if result["data_sha256"] == sha256:
            systems, primary = result["systems"], result["primary_metrics"]
            baselines = _baselines(systems)
            columns[f"specialist ({name})"] = {
                t: f"{systems['specialist']['metrics'][t][m]:.3f}" for t, m in primary.items()
            }
            columns[f"best baseline ({name})"] = {
                t: _best({s: v["metrics"][t][m] for s, v in baselines.items()})
                for t, m in primary.items()
            }
    for name, result in _results("specialist-seeds"):
        if result["data_sha256"] == sha256:
            spreads, single = seed_rows(result)
            for system, spread in spreads.items():
                columns[f"{system}, seeds ({name})"] = {t: _spread(f) for t, f in spread.items()}
            columns[f"best baseline, one run ({name})"] = {
                t: _best({s: v[t] for s, v in single.items()}) for t in result["primary_metrics"]
            }
    return columns


def ceiling_section() -> str:
    """Each synthetic data file's ceiling beside what the systems reached on it."""
    sections = []
    for name, result in _results("ceiling"):
        tasks = result["tasks"]
        columns = beside_ceiling(result["data_sha256"])
        lines = [
            "| task | metric | ceiling [95%] | " + " | ".join(columns) + " |",
            "|" + " --- |" * (len(columns) + 3),
            *(
                f"| {task} | {f['metric']} | {f['value']:.3f} {_bracketed(f['interval'])} | "
                + " | ".join(column.get(task, "") for column in columns.values())
                + " |"
                for task, f in tasks.items()
            ),
        ]
        positives = ", ".join(
            f"{f['positives']} {task} positives" for task, f in tasks.items() if f["positives"]
        )
        sections.append(
            f"### {name}\n\n`{result['dataset']}`, {result['test_rows']:,} held-out claims"
            f"{'; ' + positives if positives else ''}; {result['created_at']}; "
            f"`{result['command']}`.\n\n" + "\n".join(lines) + "\n"
        )
    if not sections:
        return ""
    return (
        "## Ceilings of the synthetic claims\n\nMade by `benchmarks/synthetic_ceiling.py`: the "
        "generator's hidden story scored on the held-out labels (for yes/no tasks its own "
        "probability, the best ranking there is; for multiclass tasks its true label, a "
        "reference no model should pass by more than noise), beside every accuracy and seed "
        "result on the same file. A goal above the ceiling, or a gap far inside its interval, "
        "cannot be settled on these claims.\n\n" + "\n".join(sections)
    )


def search_section() -> str:
    """Each candidate of the training-settings search beside the config it changes one thing of."""
    sections = []
    for name, result in _results("search"):
        tasks = list(result["rows"][0]["validation"])
        lines = [
            "| change | validation score | "
            + " | ".join(f"lead over the defaults: {task}" for task in tasks)
            + " | seconds |",
            "|" + " --- |" * (len(tasks) + 3),
        ]
        for row in result["rows"]:
            change = row["change"]
            shown = change if isinstance(change, str) else json.dumps(change)
            leads = row.get("lead_over_defaults", {})
            cells = [
                Interval(**leads[task]).bracketed(signed=True) if task in leads else ""
                for task in tasks
            ]
            lines.append(
                f"| {shown} | {row['validation_score']:.4f} | "
                + " | ".join(cells)
                + f" | {row['seconds']:.0f} |"
            )
        settings = ", ".join(f"{k} {v}" for k, v in result["training"].items() if v is not None)
        sections.append(
            f"### {name}\n\n`{result['data']}`, {result['validation_rows']:,} validation "
            f"claims; {result['machine']}; {result['created_at']}. The config's settings: "
            f"{settings}.\n\n" + "\n".join(lines) + "\n"
        )
    if not sections:
        return ""
    return (
        "## Training settings search\n\nMade by `benchmarks/search.py`: one setting changed at "
        "a time from the config's own, each candidate trained in full and scored by the mean "
        "primary metric over tasks of the tuned model alone (no partner, no decision offsets) "
        "on the validation split (never the test split), best first. Each lead is the "
        "candidate's primary metric minus the defaults' on that task, a 95% interval paired on "
        "bootstrap resamples of the validation claims: wholly above zero, the change is better "
        "beyond sampling error. With a dozen candidates and a few tasks, about one interval in "
        "twenty misses zero by chance alone, so a single one does not move the defaults.\n\n"
        + "\n".join(sections)
    )


def _training_verdict(result: dict) -> str:
    """A capped (smoke) run never reads as meeting a goal, whatever its file says."""
    if result.get("max_steps"):
        return f"smoke run ({result['max_steps']} steps): no"
    if result.get("goal_met") is None:
        return ""
    return "yes" if result["goal_met"] else "no"


def plot_training(results: list[tuple[str, dict]]) -> Path:
    """Every training run's wall clock on one axis from zero, each beside its goal."""
    plt = _pyplot()
    names = [name for name, _ in results]
    seconds = [result["wall_seconds"] for _, result in results]
    figure, axis = plt.subplots(figsize=(6.4, 0.6 + 0.45 * len(results)))
    verdicts = [
        result.get("goal_met") if not result.get("max_steps") else None for _, result in results
    ]
    colours = {True: "tab:green", False: "tab:red", None: "tab:grey"}
    axis.barh(names, seconds, color=[colours[verdict] for verdict in verdicts])
    for row, (value, (_, result)) in enumerate(zip(seconds, results, strict=True)):
        axis.text(value, row, f" {value:,.0f} s", va="center", fontsize=8)
        if result.get("goal") and not result.get("max_steps"):
            limit = result["goal"]["wall_seconds_below"]
            axis.plot([limit, limit], [row - 0.4, row + 0.4], color="grey", linestyle=":")
    axis.set_xlabel("seconds of `claims train`, wall clock (dotted: the goal; red: missed)")
    limits = [r["goal"]["wall_seconds_below"] for _, r in results if r.get("goal")]
    axis.set_xlim(0, max(seconds + limits) * 1.2)
    axis.invert_yaxis()
    return _save(figure, "training-time")


STAGE_ORDER = ["preparing", "fine_tuning", "waiting_for_partner", "after"]


def training_section() -> str:
    """Omitted until a training time is kept, as the other optional sections are."""
    results = list(_results("training"))
    if not results:
        return ""
    plot_training(results)
    lines = [
        "| dataset | machine | strategy | rows trained on | `claims train` s (wall clock) "
        "| training s (manifest) | goal | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    commands = []
    for name, result in results:
        goal = result.get("goal")
        limit = "" if goal is None else f"< {goal['wall_seconds_below']} s"
        lines.append(
            f"| {result['dataset']} | {result['machine']} | {result['strategy']} "
            f"| {result['train_rows']:,} of {result['rows']:,} | {result['wall_seconds']:,.1f} "
            f"| {result['training_seconds']:,.1f} | {limit} | {_training_verdict(result)} |"
        )
        spent = result.get("stage_seconds", {})
        stages = ", ".join(
            f"{stage.replace('_', ' ')} {spent[stage]:,.0f} s"
            for stage in sorted(spent, key=lambda s: [*STAGE_ORDER, s].index(s))
        )
        stages = f"; the trainer's time: {stages}" if stages else ""
        commands.append(f"- {name}: `{result['command']}` ({result['created_at']}){stages}")
    return (
        "## Training time\n\nMade by `benchmarks/training_time.py`; raw figures in "
        "`benchmarks/results/training-*.json`. Wall clock of the whole `claims train` command, "
        "process start and checkpoint writing included, beside the seconds the trainer itself "
        "records in the checkpoint's manifest. Goals (issue 3): the full workers' compensation "
        "set with its default strategy in under 3 minutes on one GPU; the demo (`make demo`'s "
        "4,000 synthetic claims) in under 10 minutes on the CPU.\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(commands)
        + "\n\n![training time](img/training-time.png)\n"
    )


def plot_throughput(result: dict, name: str) -> Path:
    plt = _pyplot()
    rates = result["claims_per_second"]
    figure, axis = plt.subplots(figsize=(6.4, 2.4))
    colours = ["tab:grey" if path == "naive" else "tab:green" for path in rates]
    axis.barh(list(rates), list(rates.values()), color=colours)
    for row, value in enumerate(rates.values()):
        axis.text(value, row, f" {value:,.0f}", va="center", fontsize=8)
    axis.set_xlabel("claims per second, file in to file out (median)")
    axis.set_xlim(0, max(rates.values()) * 1.2)
    axis.invert_yaxis()
    return _save(figure, f"throughput-{name}")


def throughput_section() -> str:
    sections = []
    for name, result in _results("throughput"):
        plot_throughput(result, name)
        lines = [
            "| path | claims/s (median) | runs (s) | speed-up vs naive |",
            "| --- | --- | --- | --- |",
        ]
        naive = result["claims_per_second"]["naive"]
        for run, rate in result["claims_per_second"].items():
            runs = ", ".join(f"{s:.1f}" for s in result["seconds"][run])
            lines.append(f"| {run} | {rate:,.0f} | {runs} | {rate / naive:.2f}x |")
        note = ""
        for path, check in result.get("precision_checks", {}).items():
            verdict = "acceptable" if check["acceptable"] else "not acceptable"
            note += (
                f"\n- `{path}`: moves no metric by more than "
                f"{check['largest_metric_change'] * 100:.2f} points on 2,000 labelled claims "
                f"against fp32: {verdict} (the limit is 0.5 point)."
            )
        if note:
            note = f"\n\nThe product's path ran in {result['precision']}.{note}\n"
        note += _busy(result) + _stages(result)
        sections.append(
            f"### {name}\n\n{result['machine']}; {result['created_at']}; `{result['command']}`; "
            + _workload(result)
            + "\n\n"
            + "\n".join(lines)
            + note
            + f"\n\n![throughput {name}](img/throughput-{name}.png)\n"
        )
    if not sections:
        return ""
    return (
        "## Throughput\n\nMade by `benchmarks/throughput.py`; raw figures in "
        "`benchmarks/results/throughput-*.json`. Claims per second end to end, file in to file "
        "out, model loading excluded. The naive loop reads the whole file, pads every batch of "
        "64 to 128 tokens in file order and runs fp32; the product's path is `claims score`.\n\n"
        + "\n".join(sections)
    )


def _workload(result: dict) -> str:
    rows, naive = result["rows"], result.get("naive_rows", result["rows"])
    distinct = result.get("distinct_claims", rows)
    text = f"{rows:,} synthetic claims of {result['mean_tokens']} tokens on average"
    if distinct < rows:
        text += f" ({distinct:,} distinct ones repeated under new ids)"
    if naive < rows:
        text += f"; the naive loop on the first {naive:,} of them"
    runs = len(result["seconds"]["product"])
    text += f"; {runs} run{'s' if runs > 1 else ''} of each path, alternating"
    if not result.get("complete", True):
        text += f" (**stopped early**: {runs} of the {result['repeats']} runs planned)"
    return text + "."


def _busy(result: dict) -> str:
    runs = result.get("model_and_waiting_seconds")
    if not runs:
        return ""
    workers = result.get("workers", 1)
    helpers = f"{workers} preparing processes" if workers > 1 else "a preparing thread"
    worked = ", ".join(f"{model:.1f} s / {waiting:.1f} s" for model, waiting in runs)
    return (
        f"\n\nThe product's runs, with {helpers}: the model worked / waited for the CPU work "
        f"{worked}.\n"
    )


def _stages(result: dict) -> str:
    stages = result.get("stages_claims_per_second")
    if not stages:
        return ""
    lines = ["| step of `claims score`, alone | claims/s (median) |", "| --- | --- |"]
    lines += [f"| {stage} | {rate:,.0f} |" for stage, rate in stages.items()]
    return (
        "\nEach step of the product's path timed alone in one process on the same claims (at "
        "most the first 20,000, as one chunk), in the same run: once the encoder is fast (on a "
        "GPU), the slowest of the others, divided among the preparing processes, bounds the "
        "run.\n\n" + "\n".join(lines) + "\n"
    )


def plot_serving(result: dict, name: str) -> Path:
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for precision, run in result["precisions"].items():
        for mode, rows in run["levels"].items():
            clients = [row["clients"] for row in rows]
            label = f"{mode}, {precision}"
            left.plot(clients, [row["claims_per_second"] for row in rows], marker="o", label=label)
            right.plot(clients, [row["p99_ms"] for row in rows], marker="o", label=label)
    right.axhline(250, color="grey", linestyle=":", linewidth=1)
    right.set_yscale("log")  # p99 spans 30 ms to seconds
    left.set_ylim(bottom=0)
    for axis, label in ((left, "claims per second"), (right, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(label)
    figure.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize="small")
    figure.tight_layout(rect=(0, 0.16, 1, 1))  # the legend below, clear of the lines
    return _save(figure, f"serving-{name}")


def _serving_goal(precision: str, run: dict) -> str:
    lines = []
    for mode, figures in run["at_32_clients"].items():
        met = figures["speedup"] >= 3 and figures["p99_ms"] < 250
        lines.append(
            f"- {precision}, {mode}: at 32 clients {figures['speedup']}x the claims per second "
            f"of one_at_a_time, with p99 {figures['p99_ms']} ms: goal (3x, p99 under 250 ms) "
            f"{'met' if met else 'not met'}"
            + (
                f"; {figures['speedup_over_unbatched']}x {figures['unbatched']}."
                if figures["unbatched"] != "one_at_a_time"
                else "."
            )
        )
    return "\n".join(lines)


def _rounds(result: dict) -> str:
    rounds = result.get("rounds", 1)
    if rounds == 1:
        return ""
    return f" and round, medians of {rounds} rounds with the modes alternating"


def serving_section() -> str:
    sections = []
    for name, result in _results("serving"):
        plot_serving(result, name)
        lines = [
            "| precision | mode | clients | claims/s | p50 ms | p99 ms | errors |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for precision, run in result["precisions"].items():
            for mode, rows in run["levels"].items():
                lines += [
                    f"| {precision} | {mode} | {r['clients']} | {r['claims_per_second']:,.0f} "
                    f"| {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |"
                    for r in rows
                ]
        goals = "\n".join(_serving_goal(p, run) for p, run in result["precisions"].items())
        sections.append(
            f"### {name}\n\n{result['machine']}; {result['created_at']}; `{result['command']}`; "
            f"{result['seconds_per_level']:g} s per level{_rounds(result)}.\n\n{goals}\n\n"
            + "\n".join(lines)
            + f"\n\n![serving {name}](img/serving-{name}.png)\n"
        )
    if not sections:
        return ""
    return (
        "## Serving\n\nMade by `benchmarks/serving.py`: single-claim `POST /v1/triage` over "
        "loopback from wrk's closed-loop connections, the service in its own process, in four "
        "modes: one_at_a_time (one forward pass per request, one pass at a time on every core: "
        "the goal's reference) and micro_batching, the service's default one lane, and each "
        "in two inference lanes of one core each (`CLAIMS_INFERENCE_LANES=2`); in the "
        "service's default fp32 and in bf16 (`CLAIMS_PRECISION`); raw figures in "
        "`benchmarks/results/serving-*.json`.\n\n" + "\n".join(sections)
    )


def plot_load(result: dict, name: str) -> Path:
    plt = _pyplot()
    windows = result["windows"]
    minutes = [w["at_seconds"] / 60 for w in windows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.plot(minutes, [w["resident_mib"] for w in windows], marker=".")
    left.set_ylabel("service resident memory (MiB)")
    left.set_ylim(bottom=0)
    right.plot(minutes, [w["p99_ms"] for w in windows], marker=".", label="p99")
    right.plot(minutes, [w["p50_ms"] for w in windows], marker=".", label="p50")
    right.set_ylabel("latency (ms)")
    right.set_ylim(bottom=0)
    right.legend()
    for axis in (left, right):
        axis.set_xlabel("minutes")
    return _save(figure, f"load-{name}")


def load_section() -> str:
    sections = []
    for name, result in _results("load"):
        plot_load(result, name)
        verdict = "passed" if result["passed"] else "failed"
        sections.append(
            f"### {name}\n\n{result['machine']}; {result['created_at']}; `{result['command']}`."
            f"\n\n{result['rate_per_second']:g} requests a second for {result['minutes']:g} "
            f"minutes: {result['requests']:,} requests, {result['errors']} errors; resident "
            f"memory {result['resident_mib_second_minute']} MiB in the second minute and "
            f"{result['resident_mib_last_minute']} MiB in the last "
            f"({result['memory_growth'] * 100:+.1f}%): {verdict} (no error, memory within "
            f"10%).\n\n![load {name}](img/load-{name}.png)\n"
        )
    if not sections:
        return ""
    return (
        "## Steady load\n\nMade by `benchmarks/load.py`: an open loop of single-claim triages "
        "and feedback items (nine to one) at a fixed rate against the service with keys on; "
        "raw figures, ten seconds a window, in `benchmarks/results/load-*.json`.\n\n"
        + "\n".join(sections)
    )


def _busy_share(share: float | None) -> str:
    return "" if share is None else f"; the lane busy {share:.0%} of the time"


def overload_section() -> str:
    """Each overload result: capacity, then ten times it for a minute, against the goals."""
    sections = []
    for name, result in _results("overload"):
        capacity, load, goals = result["capacity"], result["overload"], result["goals"]
        statuses = ", ".join(f"{n:,} x {code}" for code, n in sorted(load["statuses"].items()))
        timeout_ms = 2000 * result["inference_timeout_s"]

        met = {goal: "met" if passed else "not met" for goal, passed in goals.items()}
        cores = result.get("cores", {"shared": True})
        rows = [
            (
                "cores",
                "service and load generator on every core"
                if cores["shared"]
                else f"service {cores['service']}, load generator {cores['load_generator']}",
                "",
            ),
            (
                "capacity (claims/s answered 200)",
                f"{capacity['claims_per_second']}" + _busy_share(capacity.get("lane_busy_share")),
                "",
            ),
            (
                f"offered (requests/s, {load['times_capacity']:g}x)",
                f"{load['offered_per_second']}",
                "",
            ),
            (f"answers in {load['seconds']:g} s", statuses, ""),
            (
                "goodput (claims/s answered 200)",
                f"{load['goodput_per_second']} ({load['goodput_share_of_capacity']:.2f}x capacity)"
                + _busy_share(load.get("lane_busy_share")),
                f"≥ 90% of capacity: {met['goodput_at_least_90_percent_of_capacity']}",
            ),
            (
                "claims computed / delivered",
                f"{load['claims_computed']:,} / {load['claims_delivered']:,} "
                f"({load['delivered_share_of_computed']:.1%})",
                f"≥ 95%: {met['at_least_95_percent_of_computed_delivered']}",
            ),
            (
                "p50 / p99 of all answers",
                f"{load['p50_ms']:,} ms / {load['p99_ms']:,} ms",
                f"p99 < {timeout_ms:,.0f} ms: {met['p99_under_twice_the_timeout']}",
            ),
            (
                "acknowledged and missing from the store",
                f"{load['acknowledged_missing_from_store']:,} of {load['acknowledged']:,}",
                f"none: {met['nothing_acknowledged_lost']}",
            ),
        ]
        table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
        note = f" {result['note']}" if result.get("note") else ""
        sections.append(
            f"### {name}\n\n{result['machine']}; {result['created_at']}; "
            f"`{result['command']}`.{note}\n\n| figure | value | goal |\n| --- | --- | --- |\n"
            f"{table}\n"
        )
    if not sections:
        return ""
    return (
        "## Overload\n\nMade by `benchmarks/overload.py`: the service with keys on and a short "
        "inference timeout; first its capacity (closed-loop clients posting single-claim "
        "triages, each waiting as Retry-After asks after a 503), then ten times that rate "
        "offered by an open loop for a minute, the load generator on a core of its own unless "
        "the run says it shared the service's. Goals: goodput at least 90% of capacity, at least "
        "95% of the claims computed delivered, p99 of the answered requests under twice the "
        "timeout, every acknowledged prediction_id in the store afterwards. Raw figures in "
        "`benchmarks/results/overload-*.json`.\n\n" + "\n".join(sections)
    )


def cluster_section() -> str:
    """Each cluster result: throughput by replica count, then the switch after a promotion."""
    sections = []
    for name, result in _results("cluster"):
        rows = "\n".join(
            f"| {r['replicas']} | {r['claims_per_second']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['errors']} |"
            for r in result["rounds"]
        )
        switch = result["switch"]
        reached = switch["seconds_until_every_replica_serves_it"]
        statuses = ", ".join(f"{n:,} x {code}" for code, n in sorted(switch["statuses"].items()))
        versions = ", ".join(
            f"{n:,} by {v}" for v, n in sorted(switch["versions_answering"].items())
        )
        note = f" {result['note']}" if result.get("note") else ""
        sections.append(
            f"### {name}\n\n{result['machine']}; {result['created_at']}; "
            f"`{result['command']}`; torch threads a replica: "
            f"{result.get('threads_per_replica', 'all the cores')}.{note}\n\n"
            "| replicas | claims/s (200) | p50 ms | p99 ms | errors |\n"
            f"| --- | --- | --- | --- | --- |\n{rows}\n\n"
            "A promotion through the first replica reached every replica in "
            f"{'(not within the limit)' if reached is None else f'{reached} s'} (reload interval "
            f"{result['reload_interval_s']:g} s); the answers across it: {statuses}; "
            f"answered {versions}.\n"
        )
    if not sections:
        return ""
    return (
        "## Cluster\n\nMade by `benchmarks/cluster.py`: replicas of `claims serve` sharing one "
        "PostgreSQL and one data path, closed-loop clients sending to them in turn; then a "
        "promotion through one replica while the clients go on. On one machine the replicas "
        "share its cores. Raw figures in `benchmarks/results/cluster-*.json`.\n\n"
        + "\n".join(sections)
    )


def plot_explanations(result: dict, name: str) -> Path:
    plt = _pyplot()
    tasks = list(result["faithfulness"])
    figure, axis = plt.subplots(figsize=(7, 3.2))
    width = 0.38
    for offset, key, label in (
        (-width / 2, "mean_fall_top_phrase", "without the top phrase"),
        (width / 2, "mean_fall_random_phrase", "without a random phrase as long"),
    ):
        falls = [result["faithfulness"][task][key] for task in tasks]
        axis.bar([i + offset for i in range(len(tasks))], falls, width, label=label)
    axis.set_xticks(range(len(tasks)), tasks)
    axis.set_ylabel("mean fall of the label's probability")
    axis.axhline(0, color="black", linewidth=0.6)
    axis.legend()
    return _save(figure, f"explanations-{name}")


def explanations_section() -> str:
    """Each explanation result: how much the top phrase matters beside a random one, and what
    explaining costs a claim."""
    sections = []
    for name, result in _results("explanations"):
        plot_explanations(result, name)
        rows = []
        for task, falls in result["faithfulness"].items():
            low, high = falls["difference_95_interval"]
            rows.append(
                f"| {task} | {falls['claims']:,} | {falls['mean_fall_top_phrase']:+.3f} | "
                f"{falls['mean_fall_random_phrase']:+.3f} | {falls['mean_difference']:+.3f} "
                f"[{low:+.3f}, {high:+.3f}] |"
            )
        explained, served = result["triage_explained"], result["triage_as_served"]
        note = f" {result['note']}" if result.get("note") else ""
        sections.append(
            f"### {name}\n\n{result['machine']}; {result['created_at']}; "
            f"`{result['command']}`; model {result['model_version']}.{note}\n\n"
            "| task | claims | fall without the top phrase | without a random phrase | "
            "difference (95% interval) |\n| --- | --- | --- | --- | --- |\n"
            + "\n".join(rows)
            + f"\n\nOne claim at a time on {result['torch_threads']} torch threads: triage with "
            f"every answer explained p50 {explained['p50_ms']:,} ms (p95 {explained['p95_ms']:,}"
            f" ms); as served, only the answers that need review explained, p50 "
            f"{served['p50_ms']:,} ms (p95 {served['p95_ms']:,} ms), over {served['claims']} "
            f"claims.\n\n![explanations {name}](img/explanations-{name}.png)\n"
        )
    if not sections:
        return ""
    return (
        "## Explanations\n\nMade by `benchmarks/explanations.py`: on held-out claims, each "
        "task's top raising phrase is removed, and so is a random run of as many words "
        "elsewhere in the same narrative; a faithful explanation names phrases whose removal "
        "lowers the chosen label's probability clearly more (paired bootstrap interval of the "
        "difference wholly above zero). Raw figures in `benchmarks/results/explanations-*.json`."
        "\n\n" + "\n".join(sections)
    )


def plot_base_models(result: dict, name: str) -> Path:
    plt = _pyplot()
    models = list(result["models"])
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for axis, key, title in (
        (axes[0], "trained_claims_per_s", "claims a second, fine-tuning"),
        (axes[1], "served_claims_per_s", "claims a second, served"),
    ):
        axis.barh(models, [result["models"][m][key] for m in models])
        axis.set_title(title)
        axis.invert_yaxis()
    axes[1].set_yticks([])
    return _save(figure, f"base-models-{name}")


def base_models_section() -> str:
    """Each base-model cost result: a step of fine-tuning and a batch served, per model."""
    sections = []
    for name, result in _results("base-models"):
        plot_base_models(result, name)
        rows = "\n".join(
            f"| {model} | {m['parameters'] / 1e6:.1f} M | {m['layers']} x {m['hidden_size']} | "
            f"{m['mean_tokens']:.0f} | {m['train_step_s']:.2f} ({m['training_precision']}) | "
            f"{m['train_cost_vs_first']:.2f}x | {m['served_claims_per_s']:,.1f} "
            f"({m['serving_precision']}) | {m['serve_cost_vs_first']:.2f}x |"
            for model, m in result["models"].items()
        )
        note = f" {result['note']}" if result.get("note") else ""
        sections.append(
            f"### {name}\n\n{result['machine']}; {result['created_at']}; "
            f"`{result['command']}`; {result['data']}, max_length {result['max_length']}, "
            f"training batches of {result['batch_size']}, {result['served_claims']} claims "
            f"served a round, rounds: {result['rounds']}, {result['torch_threads']} torch "
            f"threads.{note}\n\n"
            "| base model | parameters | layers x width | tokens a claim | s a training step | "
            "training cost vs the first | claims/s served | serving cost vs the first |\n"
            f"| --- | --- | --- | --- | --- | --- | --- | --- |\n{rows}\n\n"
            f"![base models {name}](img/base-models-{name}.png)\n"
        )
    if not sections:
        return ""
    return (
        "## Base models\n\nMade by `benchmarks/base_models.py`: each base model through the "
        "product's own data preparation, training step and predictor, the rounds visiting the "
        "models in turn; medians over the rounds, ratios to the first model measured in the "
        "same run. Raw figures in `benchmarks/results/base-models-*.json`.\n\n"
        + "\n".join(sections)
    )


def render() -> None:
    (DOCS / "benchmarks.md").write_text(
        "# Benchmarks\n\n"
        + "\n".join(
            section
            for section in (
                accuracy_section(),
                seeds_section(),
                ceiling_section(),
                search_section(),
                training_section(),
                throughput_section(),
                serving_section(),
                overload_section(),
                load_section(),
                cluster_section(),
                explanations_section(),
                base_models_section(),
            )
            if section
        )
    )
