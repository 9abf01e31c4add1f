"""The provisioning KPIs over a time window, computed in SQL from provisioning_jobs.

Definitions (provision jobs submitted in the window, ``created_at`` in [start, end)):
- successRate: COMPLETED / (COMPLETED + FAILED); a CANCELLED job was the
  operator's choice, not a failure, so it is in neither.
- averageSeconds / p95Seconds: submission to completion of the COMPLETED ones
  (what a user waits, queueing included; MAX_PROVISIONING_TIME counts the same).
- rollbackRate: jobs that rolled back / jobs that ended. FAILED and CANCELLED
  are reached only through ROLLING_BACK (app/domain/states.py), so they are
  exactly the rolled-back ones.
- peakConcurrent: the most provision jobs in flight (submitted, not yet ended)
  at any one moment of the window, jobs submitted before it included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from app.persistence.database import db

SUMMARY_SQL = text(
    """
    SELECT
        count(*) AS total,
        count(*) FILTER (WHERE state = 'COMPLETED') AS completed,
        count(*) FILTER (WHERE state = 'FAILED') AS failed,
        count(*) FILTER (WHERE state = 'CANCELLED') AS cancelled,
        count(*) FILTER (WHERE state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')) AS in_flight,
        avg(extract(epoch FROM completed_at - created_at))
            FILTER (WHERE state = 'COMPLETED') AS average_seconds,
        percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at))
            FILTER (WHERE state = 'COMPLETED') AS p95_seconds
    FROM provisioning_jobs
    WHERE kind = 'provision' AND created_at >= :start AND created_at < :end
    """
)

# A sweep line over the jobs' spans, clipped to the window: +1 where one starts,
# -1 where one ends; ends sort first at equal times, so spans that only touch
# do not count as overlapping.
PEAK_SQL = text(
    """
    WITH spans AS (
        SELECT greatest(created_at, :start) AS opened,
               least(coalesce(completed_at, :end), :end) AS closed
        FROM provisioning_jobs
        WHERE kind = 'provision'
          AND created_at < :end
          AND coalesce(completed_at, :end) > :start
    ), edges AS (
        SELECT opened AS at, 1 AS delta FROM spans
        UNION ALL
        SELECT closed AS at, -1 AS delta FROM spans
    )
    SELECT coalesce(max(running), 0) AS peak
    FROM (SELECT sum(delta) OVER (ORDER BY at, delta ROWS UNBOUNDED PRECEDING) AS running
          FROM edges) AS timeline
    """
)


RECENT_SQL = text(
    """
    SELECT j.id, d.department_id, j.state, j.completed_at,
           extract(epoch FROM j.completed_at - j.created_at) AS seconds
    FROM provisioning_jobs j JOIN departments d ON d.id = j.department_pk
    WHERE j.kind = 'provision' AND j.completed_at IS NOT NULL
      AND j.created_at >= :start AND j.created_at < :end
    ORDER BY j.completed_at DESC
    LIMIT :limit
    """
)
RECENT_JOBS = 30


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, length: timedelta) -> Window:
        return cls(end - length, end)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None


def provisioning_kpis(window: Window) -> dict[str, Any]:
    params = {"start": window.start, "end": window.end}
    with db.transaction() as session:
        summary = session.execute(SUMMARY_SQL, params).mappings().one()
        peak = session.execute(PEAK_SQL, params).scalar_one()
    completed, failed, cancelled = summary["completed"], summary["failed"], summary["cancelled"]
    ended = completed + failed + cancelled
    return {
        "total": summary["total"],
        "completed": completed,
        "failed": failed,
        "cancelled": cancelled,
        "inFlight": summary["in_flight"],
        "successRate": _ratio(completed, completed + failed),
        "averageSeconds": _seconds(summary["average_seconds"]),
        "p95Seconds": _seconds(summary["p95_seconds"]),
        "rollbackRate": _ratio(failed + cancelled, ended),
        "peakConcurrent": int(peak),
        "recent": recent_provisionings(window),
    }


def recent_provisionings(window: Window, limit: int = RECENT_JOBS) -> list[dict[str, Any]]:
    """The latest finished provision jobs, oldest first (the dashboard's chart)."""
    params = {"start": window.start, "end": window.end, "limit": limit}
    with db.transaction() as session:
        rows = session.execute(RECENT_SQL, params).mappings().all()
    return [
        {
            "provisioningId": str(row["id"]),
            "departmentId": row["department_id"],
            "status": str(row["state"]).lower(),
            "completedAt": row["completed_at"].isoformat().replace("+00:00", "Z"),
            "seconds": _seconds(row["seconds"]),
        }
        for row in reversed(rows)
    ]
