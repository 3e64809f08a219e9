"""YAML in, YAML out for `gammaxds inject`: multi-document text through the rewriter, all or nothing.

The output goes to `kubectl apply`, so a stream with one bad object yields no output at all (and one error
line per bad object): a half-meshed application is worse than an error. Pure functions: text in, text out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from .rewrite import InjectConfig, InjectError, Outcome, inject, rewrite_document, uninject


class _Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it, except that a timestamp stays the string it was: an unquoted
    `creationTimestamp: 2024-01-01T00:00:00Z` must come back out exactly as it went in."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """Writes every object out in full: no `&anchor`/`*alias` pairs, which kubectl reads but people should not
    have to (an input's aliases are expanded)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass
class Rewritten:
    """The output text (empty when there are errors), notes on objects left unchanged, and error lines."""

    text: str = ""
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A parser error as one line: what is wrong and where (line and column are 1-based)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def load_documents(text: str) -> list[Any]:
    """Every document of a YAML stream (empty ones dropped). Raises yaml.YAMLError."""
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def dump_documents(docs: list[Any]) -> str:
    """The documents as YAML, `---` between them, keys in their given order (the output is for people)."""
    if not docs:
        return ""
    return yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True, default_flow_style=False
    )


def rewrite_text(
    text: str, source: str, config: InjectConfig | None = None, *, remove: bool = False
) -> Rewritten:
    """Inject (or, with `remove`, uninject) every object of a YAML stream named `source` in messages."""
    try:
        docs = load_documents(text)
    except yaml.YAMLError as err:
        return Rewritten(errors=[f"{source}: not YAML: {_yaml_problem(err)}"])
    fn: Callable[..., Outcome] = uninject if remove else inject
    out: Rewritten = Rewritten()
    new_docs = []
    for number, doc in enumerate(docs, start=1):
        where = f"{source}: document {number}" if len(docs) > 1 else source
        try:
            new, notes = rewrite_document(doc, fn, None if remove else (config or InjectConfig()))
        except InjectError as err:
            out.errors.append(f"{where}: {err}")
            continue
        new_docs.append(new)
        out.notes += [f"{where}: {note}" for note in notes]
    if not out.errors:
        out.text = dump_documents(new_docs)
    return out
