"""LaTeX output: escaping of untrusted names and booktabs tables.

Model, metric and class names come from users and plugins, so every one is
escaped before it reaches a .tex file: a stray `_`, `&` or `%` would otherwise
break the build or silently cut a row short.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import RecordError

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # These print as other glyphs in the default OT1 encoding.
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # Braced so that a cell starting a row is not read as `\\[...]` or `\\*`.
    "[": "{[}",
    "]": "{]}",
    "*": "{*}",
}
_SPECIAL_RE = re.compile("|".join(re.escape(c) for c in _SPECIAL))
_KEY = re.compile(r"^[A-Za-z0-9_:.+/\-]+$")


def latex_escape(text: str) -> str:
    """`text` as literal characters in LaTeX text mode."""
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group(0)], str(text))


def check_key(key: str, what: str) -> str:
    """A citation or label key: passed through verbatim, so it must be plain."""
    if not _KEY.match(key):
        raise RecordError(f"{what} {key!r} may contain only letters, digits and _ : . + / -")
    return key


def booktabs(
    header: Sequence[str],
    groups: Sequence[Sequence[Sequence[str]]],
    align: str,
    caption: str | None = None,
    label: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A booktabs tabular; `groups` of rows are separated by `\\midrule`.

    Cells are inserted as given (callers escape them). With a caption or a
    label the tabular is wrapped in a `table` float.
    """
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    for index, rows in enumerate(group for group in groups if group):
        if index:
            lines.append(r"\midrule")
        lines.extend(" & ".join(row) + r" \\" for row in rows)
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines.append(r"\par\smallskip{\footnotesize " + r" \\ ".join(notes) + r"\par}")
    if caption is None and label is None:
        return "\n".join(lines) + "\n"
    head = [r"\begin{table}[t]", r"\centering"]
    if caption is not None:
        head.append(rf"\caption{{{latex_escape(caption)}}}")
    if label is not None:
        head.append(rf"\label{{{check_key(label, 'label')}}}")
    return "\n".join(head + lines + [r"\end{table}"]) + "\n"
