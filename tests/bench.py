"""`make bench`: speed and memory of the main jobs, each case in its own process, as a table.

Each case prints one JSON line; peak memory is the child's maximum resident set size.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

CASES: dict[str, Callable[[Path], dict[str, object]]] = {}


def case(name: str) -> Callable:
    def register(function: Callable[[Path], dict[str, object]]) -> Callable:
        CASES[name] = function
        return function

    return register


def big_feed(entries: int) -> bytes:
    """A WordPress-style feed of `entries` posts with ~4 KB bodies, like the live site's."""
    start = datetime(2026, 11, 22, tzinfo=UTC)
    paragraph = "<p>" + "The Council and Parliament reached a provisional agreement. " * 10 + "</p>"
    items = []
    for i in range(entries):
        link = f"https://www.europeantimes.example/2026/11/post-{i}/"
        items.append(
            f"<item><title>Article number {i} about European affairs</title><link>{link}</link>"
            f"<dc:creator><![CDATA[Author {i % 17}]]></dc:creator>"
            f"<pubDate>{format_datetime(start - timedelta(minutes=20 * i))}</pubDate>"
            f"<category><![CDATA[{['Politics', 'Health', 'Europe', 'Business', 'Culture', 'Technology'][i % 6]}]]></category>"
            f"<category><![CDATA[Tag {i % 50}]]></category>"
            f'<guid isPermaLink="false">https://www.europeantimes.example/?p={10000 + i}</guid>'
            f"<description><![CDATA[Summary of article {i}. [&#8230;]]]></description>"
            f'<content:encoded><![CDATA[<img src="/wp-content/uploads/{i}.jpg">{paragraph * 6}'
            f'<a href="/related/{i}/">Related</a>]]></content:encoded>'
            f"<slash:comments>{i % 40}</slash:comments></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:slash="http://purl.org/rss/1.0/modules/slash/">'
        "<channel><title>Big</title><link>https://www.europeantimes.example</link><language>en-US</language>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def _runtime(workdir: Path, feeds: list[dict]):
    from newsletter.runtime import open_runtime
    from newsletter.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{workdir / 'bench.db'}",
        feeds=feeds,
        site={
            "categories": [
                "Politics",
                "Health",
                "Europe",
                "Business",
                "Technology",
                "Culture",
                "Human Rights",
            ]
        },
    )
    return open_runtime(settings)


@case("fetch: bundled sample (6 feeds, 58 articles)")
def fetch_sample(workdir: Path) -> dict[str, object]:
    from newsletter.ingest import fetch_feeds
    from newsletter.settings import load_settings

    sample = load_settings(Path("config/demo.toml"))
    runtime = _runtime(workdir, [f.model_dump() for f in sample.feeds])
    began = time.perf_counter()
    reports = fetch_feeds(runtime.settings, runtime.factory)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "note": f"{sum(r.new for r in reports)} new articles"}


@case("fetch: 1,000-entry feed over loopback HTTP, first and second time")
def fetch_big(workdir: Path) -> dict[str, object]:
    from newsletter.ingest import fetch_feeds
    from tests.feedserver import Route, start

    state, server = start()
    body = big_feed(1000)
    state.routes["/feed/"] = Route(body=body)
    runtime = _runtime(workdir, [{"url": state.url("/feed/")}])
    began = time.perf_counter()
    [first] = fetch_feeds(runtime.settings, runtime.factory)
    middle = time.perf_counter()
    [second] = fetch_feeds(runtime.settings, runtime.factory)
    end = time.perf_counter()
    server.shutdown()
    return {
        "seconds": middle - began,
        "note": f"{len(body) / 1e6:.1f} MB, {first.new} new; unchanged re-fetch {end - middle:.2f} s "
        f"({second.unchanged} unchanged)",
    }


def run_case(name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        result = CASES[name](Path(folder))
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        run_case(sys.argv[2])
        return
    console = Console()
    table = Table(title=f"newsletter benchmarks ({os.cpu_count()} cores)")
    for column in ("case", "seconds", "peak MB", "notes"):
        table.add_column(column)
    for name in CASES:
        if len(sys.argv) > 1 and not any(word in name for word in sys.argv[1:]):
            continue
        console.print(f"running: {name}", style="dim")
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench", "--case", name], capture_output=True, text=True
        )
        if done.returncode:
            table.add_row(name, "failed", "", done.stderr.strip().splitlines()[-1][:120])
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        table.add_row(
            name,
            f"{result['seconds']:.2f}",
            f"{result['peak_mb']:.0f}",
            str(result.get("note", "")),
        )
    console.print(table)


if __name__ == "__main__":
    main()
