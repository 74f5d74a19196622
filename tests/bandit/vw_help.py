"""VW's own list of options, read from `vw --help` as the installed vowpalwabbit prints it.

`tests/bandit/data/vw_options.json` is this list for the pinned VW; a test re-reads the
installed VW and fails when the two drift. Regenerate with
`.venv/bin/python -m tests.bandit.vw_help > tests/bandit/data/vw_options.json`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "vw_options.json"

_OPTION = re.compile(
    r"^    (?:-(?P<short>\S), )?--(?P<long>[\w-]+)(?P<takes> args\.\.\.| arg)?(?:\s|$)"
)
_TYPE = re.compile(r"\(type: (?P<type>[\w\[\]]+)")


def help_text() -> str:
    """What `Workspace("--help")` prints, from a child process (it writes to stdout)."""
    return subprocess.run(
        [sys.executable, "-c", "import vowpalwabbit; vowpalwabbit.Workspace('--help')"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def options_from_help(text: str) -> list[dict[str, str | None]]:
    """Every option once (by long name, sorted): its short letter, whether it takes values
    (`flag`, `arg`, `args`) and its C++ type."""
    found: dict[str, dict[str, str | None]] = {}
    current: dict[str, str | None] | None = None
    pending = ""
    for line in text.splitlines():
        match = _OPTION.match(line)
        if match is not None:
            current = found.setdefault(
                match["long"],
                {
                    "long": f"--{match['long']}",
                    "short": f"-{match['short']}" if match["short"] else None,
                    "takes": (match["takes"] or " flag").strip().replace("args...", "args"),
                    "type": None,
                },
            )
            pending = line
        elif line.startswith("     ") and current is not None:
            pending += " " + line.strip()
        else:
            current, pending = None, ""
        typed = _TYPE.search(pending)
        if current is not None and typed is not None and current["type"] is None:
            current["type"] = typed["type"]
    return [found[name] for name in sorted(found)]


def load() -> list[dict[str, str | None]]:
    options: list[dict[str, str | None]] = json.loads(DATA.read_text())
    return options


if __name__ == "__main__":
    print(json.dumps(options_from_help(help_text()), indent=1))
