"""The one line an error is reported as: the first non-empty line of its message."""

from __future__ import annotations


def first_line(message: str | BaseException, default: str | None = None) -> str:
    """The first non-empty line of ``message`` (a text or an exception's message), stripped. When there is
    none: ``default`` when given; else, for an exception, its type's name ("out of memory (MemoryError)"
    for a MemoryError), for a text "".

    ``message``: (str) or an exception, whose ``str()`` is read."""
    text = str(message)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), None)
    if line is not None:
        return line
    if default is not None:
        return default
    if isinstance(message, MemoryError):
        return "out of memory (MemoryError)"
    return type(message).__name__ if isinstance(message, BaseException) else ""


def described(e: BaseException) -> str:
    """``"TypeName: first line"`` of an exception (its type's name alone when its message is empty), for
    errors of other libraries whose type says what went wrong."""
    line = first_line(str(e))
    return f"{type(e).__name__}: {line}" if line else type(e).__name__
