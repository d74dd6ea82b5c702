"""The role matrix printed in the README is the one the route tables give today
(``python -m ops.rolematrix``): a route added, removed or re-roled fails here until the
README is regenerated (ADR 0031)."""

from __future__ import annotations

import re
from pathlib import Path

from libs.runtime.rolematrix import markdown, matrix
from ops.rolematrix import apps

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_role_matrix_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- role-matrix:begin -->\n(.*?)<!-- role-matrix:end -->", text,
                      re.S)
    assert found, "README.md has no role-matrix block"
    assert found.group(1) == markdown(matrix(apps())), (
        "README.md's role matrix is stale: paste the output of python -m ops.rolematrix")
