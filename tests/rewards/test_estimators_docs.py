"""The docstring examples of the estimators package run and hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

from rewards import estimators

MODULES = sorted(m.name for m in pkgutil.iter_modules(estimators.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"rewards.estimators.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("name", [m for m in MODULES if not m.startswith("_")])
def test_public_modules_cite_their_source(name: str) -> None:
    module = importlib.import_module(f"rewards.estimators.{name}")
    doc = module.__doc__ or ""
    assert doc.strip(), name
    if name not in {"base", "results"}:
        assert "Reference" in doc or "(19" in doc or "(20" in doc, f"{name} cites no paper"
