"""The public library API: what `evtrack` exports, lazily, and every example in docs/library.md runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import evtrack

ROOT = Path(__file__).parents[1]
LIBRARY_MD = ROOT / "docs" / "library.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", LIBRARY_MD.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_every_example_in_library_md_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    examples = _examples()
    assert len(examples) == 7
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    for number, code in enumerate(examples, 1):
        exec(compile(code, f"docs/library.md example {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "over by 1 7 of 6" in printed
    assert "unknown time zone 'Mars/Olympus_Mons'" in printed


def test_the_exported_names_are_the_documented_ones() -> None:
    documented = set(re.findall(r"`evtrack\.([A-Za-z_]+)", LIBRARY_MD.read_text(encoding="utf-8")))
    exported = set(evtrack.__all__) - {"__version__"}
    assert exported - documented == set()
    for name in exported:
        assert getattr(evtrack, name) is not None


def test_import_evtrack_loads_no_heavy_module() -> None:
    code = ("import sys, evtrack; print(sorted(m for m in ('pyarrow', 'pandas', 'evtrack.reading', 'evtrack.api') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_report_needs_exactly_one_input() -> None:
    with pytest.raises(ValueError, match="exactly one of paths, store= or dataset="):
        evtrack.make_report()
    with pytest.raises(ValueError, match="exactly one of paths, store= or dataset="):
        evtrack.make_report("sample_logs", store="x.sqlite3")
    with pytest.raises(ValueError, match="settings= or the setting keywords, not both"):
        evtrack.make_report("sample_logs", tz="Europe/Berlin", settings=evtrack.ReportSettings())


def test_architecture_md_names_files_that_exist_and_readme_links_it() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(evtrack/[\w/]+(?:\.py)?)", text))
    assert {"evtrack/catalogue.py", "evtrack/render/registry.py", "evtrack/pipeline.py"} <= named
    assert sorted(path for path in named if not (ROOT / path).exists() and not path.endswith("markdown.py")) == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    development = readme[readme.index("## Development"):]
    assert "[docs/architecture.md](docs/architecture.md)" in development
    assert "[docs/library.md](docs/library.md)" in development
