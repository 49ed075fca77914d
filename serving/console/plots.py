"""The console's plots page, for admins: answers by route, the share that needed review, and
adjusters' agreement with the model per task and model version, over a chosen period.

The store counts (claims.store.activity); this module only lays the counts out as SVG shapes,
which the template draws inline beside tables of the same numbers: no script, no chart
library, and the page's Content Security Policy stays as strict as every other page's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from claims.store.activity import Activity, Agreement, Bucket
from serving.console.admin import admin_only
from serving.console.routes import Refused, render, signed_in

router = APIRouter(prefix="/console/plots", include_in_schema=False)

PERIODS = (7, 30, 90, 365)  # days offered; any whole number up to the last may be asked
DAILY_UP_TO = 90  # longer periods are counted by week unless days are asked for
WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24
SERIES_COLOURS = 8  # console.css colours .series-0 to .series-7, then they repeat
MAX_X_LABELS = 8


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass
class Point:
    x: float
    y: float
    title: str


@dataclass
class Line:
    name: str
    series: int
    points: list[Point]

    @property
    def path(self) -> str:
        return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in self.points)


@dataclass
class Chart:
    """One plot's shapes, in the SVG's own units."""

    id: str
    title: str
    x_labels: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    legend: list[tuple[int, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT


class Frame:
    """Bucket i's band along x; values from 0 to `top` along y."""

    def __init__(self, starts: list[date], top: float, percent: bool = False) -> None:
        self.starts, self.top, self.percent = starts, top, percent
        self.band = (WIDTH - LEFT - RIGHT) / max(len(starts), 1)

    def left(self, index: int) -> float:
        return LEFT + index * self.band

    def middle(self, index: int) -> float:
        return self.left(index) + self.band / 2

    def y(self, value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / self.top)

    def x_labels(self) -> list[tuple[float, str]]:
        every = math.ceil(len(self.starts) / MAX_X_LABELS)
        return [
            (self.middle(index), start.strftime("%d %b"))
            for index, start in enumerate(self.starts)
            if index % every == 0
        ]

    def y_ticks(self) -> list[tuple[float, str]]:
        """0, the top, and half way when that is a whole count (or a share)."""
        half = self.top / 2
        values = (0, half, self.top) if self.percent or half.is_integer() else (0, self.top)
        return [(self.y(value), self.said(value)) for value in values]

    def said(self, value: float) -> str:
        return f"{value:.0%}" if self.percent else f"{value:g}"


def nice_top(largest: int) -> int:
    """The smallest of 1, 2 or 5 times a power of ten that is at least `largest`."""
    if largest <= 1:
        return 1
    power = 10 ** math.floor(math.log10(largest))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= largest)


@dataclass
class Period:
    days: int
    bucket: Bucket

    @classmethod
    def of(cls, request: Request) -> Period:
        """From the query; ValueError, naming the field, for a value out of range."""
        query = request.query_params
        given = query.get("days", "30")
        if not given.isdigit() or not 1 <= int(given) <= PERIODS[-1]:
            raise ValueError(
                f"days: a whole number of days from 1 to {PERIODS[-1]}, not {given[:20]!r}"
            )
        days = int(given)
        bucket = query.get("bucket") or ("day" if days <= DAILY_UP_TO else "week")
        if bucket not in ("day", "week"):
            raise ValueError(f"bucket: day or week, not {bucket[:20]!r}")
        return cls(days, "day" if bucket == "day" else "week")


@router.get("")
async def plots_page(request: Request) -> Response:
    try:
        session = await signed_in(request)
        admin_only(request, session, "The plots page")
    except Refused as refused:
        return refused.response
    try:
        period = Period.of(request)
    except ValueError as error:
        return render(request, "error.html", session, 422, message=str(error))
    # counting a long period takes the database a while: not on the event loop
    store = request.app.state.store
    activity = await run_in_threadpool(store.activity, period.days, period.bucket)
    starts = activity.starts()
    routes = sorted({volume.route for volume in activity.volumes})
    versions = sorted({row.model_version for row in activity.agreement})
    tasks = sorted({row.task for row in activity.agreement})
    return render(
        request,
        "plots.html",
        session,
        period=period,
        periods=PERIODS,
        activity=activity,
        volume_chart=volume_chart(activity, starts, routes),
        review_chart=review_chart(activity, starts),
        agreement_charts=[agreement_chart(activity, starts, task, versions) for task in tasks],
        volume_rows=volume_rows(activity, starts, routes),
        agreement_totals=agreement_totals(activity.agreement),
        routes=routes,
    )


def _index(starts: list[date]) -> dict[date, int]:
    return {start: index for index, start in enumerate(starts)}


def _colour(names: list[str], name: str) -> int:
    return names.index(name) % SERIES_COLOURS


def volume_chart(activity: Activity, starts: list[date], routes: list[str]) -> Chart:
    """Answers per bucket as bars stacked by route, routes in name order from the bottom."""
    totals: dict[date, int] = {}
    for volume in activity.volumes:
        totals[volume.start] = totals.get(volume.start, 0) + volume.answers
    frame = Frame(starts, nice_top(max(totals.values(), default=0)))
    index, stacked = _index(starts), dict.fromkeys(starts, 0)
    bars = []
    for volume in sorted(activity.volumes, key=lambda v: (v.start, routes.index(v.route))):
        below = stacked[volume.start]
        stacked[volume.start] = below + volume.answers
        top = frame.y(below + volume.answers)
        bars.append(
            Bar(
                x=frame.left(index[volume.start]) + frame.band * 0.1,
                y=top,
                width=frame.band * 0.8,
                height=frame.y(below) - top,
                series=_colour(routes, volume.route),
                title=f"{volume.start:%d %b}: {volume.answers} to {volume.route}",
            )
        )
    return Chart(
        id="volumes",
        title="Answers by route",
        x_labels=frame.x_labels(),
        y_ticks=frame.y_ticks(),
        bars=bars,
        legend=[(_colour(routes, route), route) for route in routes],
    )


def review_chart(activity: Activity, starts: list[date]) -> Chart:
    """The share of each bucket's answers that needed review; buckets without answers have
    no point, and the line joins the buckets that have one."""
    answers: dict[date, list[int]] = {}
    for volume in activity.volumes:
        counts = answers.setdefault(volume.start, [0, 0])
        counts[0] += volume.answers
        counts[1] += volume.needed_review
    frame, index = Frame(starts, 1.0, percent=True), _index(starts)
    points = [
        Point(
            frame.middle(index[start]),
            frame.y(review / total),
            f"{start:%d %b}: {review} of {total} needed review ({review / total:.0%})",
        )
        for start, (total, review) in sorted(answers.items())
    ]
    return Chart(
        id="review-rate",
        title="Share of answers that needed review",
        x_labels=frame.x_labels(),
        y_ticks=frame.y_ticks(),
        lines=[Line("needed review", 0, points)],
    )


def agreement_chart(
    activity: Activity, starts: list[date], task: str, versions: list[str]
) -> Chart:
    """For one task, a line per model version: the share of confirmed labels that equal the
    model's answer, in the buckets where feedback arrived."""
    frame, index = Frame(starts, 1.0, percent=True), _index(starts)
    lines = []
    for version in versions:
        rows = [
            row for row in activity.agreement if (row.task, row.model_version) == (task, version)
        ]
        if rows:
            points = [
                Point(
                    frame.middle(index[row.start]),
                    frame.y(row.agreed / row.compared),
                    f"{row.start:%d %b}, {version}: {row.agreed} of {row.compared} agree "
                    f"({row.agreed / row.compared:.0%})",
                )
                for row in rows
            ]
            lines.append(Line(version, _colour(versions, version), points))
    return Chart(
        id=f"agreement-{task}",
        title=f"Adjusters' agreement with the model: {task}",
        x_labels=frame.x_labels(),
        y_ticks=frame.y_ticks(),
        lines=lines,
        legend=[(line.series, line.name) for line in lines],
    )


@dataclass
class VolumeRow:
    start: date
    by_route: dict[str, int]
    answers: int
    needed_review: int

    @property
    def review_rate(self) -> float | None:
        return self.needed_review / self.answers if self.answers else None


def volume_rows(activity: Activity, starts: list[date], routes: list[str]) -> list[VolumeRow]:
    """Every bucket, the empty ones too, for the table beside the first two plots."""
    rows = {start: VolumeRow(start, dict.fromkeys(routes, 0), 0, 0) for start in starts}
    for volume in activity.volumes:
        row = rows[volume.start]
        row.by_route[volume.route] = volume.answers
        row.answers += volume.answers
        row.needed_review += volume.needed_review
    return list(rows.values())


def agreement_totals(rows: list[Agreement]) -> list[Agreement]:
    """Per task and model version, the whole period's labels compared and agreeing (`start`
    is the first bucket with feedback)."""
    totals: dict[tuple[str, str], Agreement] = {}
    for row in rows:
        key = (row.task, row.model_version)
        seen = totals.get(key)
        totals[key] = (
            row
            if seen is None
            else Agreement(
                seen.start, row.task, row.model_version,
                seen.compared + row.compared, seen.agreed + row.agreed,
            )
        )  # fmt: skip
    return [totals[key] for key in sorted(totals)]
