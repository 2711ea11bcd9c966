"""The report as JSON (schema-versioned; deterministic apart from ``created_at``)."""

from __future__ import annotations

import json

from evtrack.report import Report


def report_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
