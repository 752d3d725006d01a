"""The complete examples in the docs stay true: every full definition in docs/flows.md loads."""

from __future__ import annotations

import re
from pathlib import Path

from workflow.definitions.build import load_flow

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_complete_definitions_in_flows_md_validate() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (DOCS / "flows.md").read_text(encoding="utf-8"), re.S)
    complete = [b for b in blocks if re.search(r"^name: ", b, re.M) and "example:" in b]
    assert complete, "docs/flows.md should show at least one complete definition"
    for text in complete:
        name = re.search(r"^name: (\S+)", text, re.M).group(1)
        assert load_flow(text, f"{name}.yaml").name == name
