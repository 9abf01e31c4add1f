"""The benchmark's CPU accounting between two /proc snapshots."""

from __future__ import annotations

from benchmarks.costs import cpu_by_group


def test_cpu_is_the_difference_per_process_and_new_processes_count_whole() -> None:
    before = {(10, 100): ("api", 5.0), (20, 200): ("worker", 1.0)}
    after = {
        (10, 100): ("api", 5.5),  # ran 0.5 s in between
        (20, 200): ("worker", 3.0),
        (30, 300): ("agents", 0.7),  # started during the burst
        (20, 999): ("worker", 0.2),  # pid 20 reused by a new process: not 0.2 - 1.0
    }
    spent = cpu_by_group(before, after)
    assert spent["api"] == 0.5
    assert spent["worker"] == 2.0 + 0.2
    assert spent["agents"] == 0.7
    assert spent["postgresql"] == 0.0


def test_section_6_names_the_load_generator_that_ran() -> None:
    from benchmarks.history import Cell
    from benchmarks.http_load import LoadResult
    from benchmarks.targets import _tool

    def cells(*tools: str) -> dict[str, Cell]:
        return {
            f"GET /{n}": Cell(LoadResult(t, 16, 5, 100, 0, 1, 2, 3, 20), 2.5)
            for n, t in enumerate(tools)
        }

    assert _tool(cells("wrk", "wrk")) == "wrk -t2"
    assert _tool(cells("python-requests", "python-requests")) == "python-requests"
    assert _tool(cells("wrk", "python-requests")) == "python-requests / wrk"


def test_section_6_sets_the_status_p99_against_the_servers_own_floor() -> None:
    from benchmarks.history import Cell, floor_lines
    from benchmarks.http_load import LoadResult

    def floor(p99_ms: float) -> Cell:
        return Cell(LoadResult("wrk", 16, 5, 9000, 9000, 7.5, 20.0, p99_ms, 1900), 0.9)

    slow_floor = "\n".join(floor_lines(floor(50.0), status_p99_ms=60.0))
    assert "| 7.5 / 50.0 | 1900 | 0.90 |" in slow_floor
    assert "1.20x the floor's p99" in slow_floor
    assert "no status read could meet it" in slow_floor

    quick_floor = "\n".join(floor_lines(floor(12.0), status_p99_ms=60.0))
    assert "5.00x the floor's p99" in quick_floor
    assert "the status read's own cost" in quick_floor


def test_section_7_splits_the_overhead_into_durability_and_bookkeeping() -> None:
    from benchmarks.targets import overhead_lines

    lines = overhead_lines([0.018] * 5, [0.030] * 5, 0.115, concurrency=8)
    text = "\n".join(lines)

    assert "Ratio overhead / floor: **6.39** (target ≤ 2)." in text
    assert "Durable floor / floor: 1.67" in text
    assert "overhead / durable floor: 3.83" in text
    assert "| 30.0 | 30.0 | 5/20 |" in text


def test_section_7_says_n_a_when_no_chain_finished() -> None:
    from benchmarks.targets import overhead_lines

    text = "\n".join(overhead_lines([], [], 0.115, concurrency=8))

    assert "Ratio overhead / floor: **n/a**" in text
    assert "0/20" in text
