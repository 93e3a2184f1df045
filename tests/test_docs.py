"""The docs site covers the package: every public module has an API page (the build
itself, warnings as errors, runs in .ci/run)."""

from __future__ import annotations

import pathlib
import pkgutil

import fnn

_DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def test_docs_every_public_module_has_an_api_page():
    public = {m.name for m in pkgutil.iter_modules(fnn.__path__) if not m.name.startswith("_")}
    public.discard("__main__")
    pages = {p.stem for p in (_DOCS / "api").glob("*.rst")}
    assert public - pages == set(), "add docs/api/<module>.rst and list it in docs/api/index.md"


def test_docs_api_index_lists_every_page():
    pages = {p.stem for p in (_DOCS / "api").glob("*.rst")}
    listed = set((_DOCS / "api" / "index.md").read_text().split())
    assert pages <= listed
