"""A call's arguments, bound to its operation's parameters and checked, once per call.

``Binder`` is made once per operation (when a contract class is made) so a call pays for a
few list operations, not for ``inspect``: positional and keyword arguments become one list in
parameter order, defaults filled in, each value passed through its declared checker (in
signature order), then the declaration's check over several arguments.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from travian_repo.repositories.declaration import Operation

_EMPTY = inspect.Parameter.empty
_NONE: dict[str, Any] = {}  # no keyword arguments (never changed: ** unpacks a copy)


class Binder:
    __slots__ = ("names", "n_positional", "n_required", "keyword_only", "keyword_names",
                 "index", "defaults", "checks", "call_check", "signature")

    def __init__(self, declared: Operation) -> None:
        params = declared.params
        self.names = tuple(p.name for p in params)
        self.n_positional = sum(1 for p in params if not p.keyword_only)
        # Fewer positional arguments than this, or a required keyword-only argument left
        # out, is a TypeError (found by looking for a missing value).
        self.n_required = max((i + 1 for i, p in enumerate(params) if p.required), default=0)
        self.keyword_only = frozenset(p.name for p in params if p.keyword_only)
        self.keyword_names = tuple(p.name for p in params if p.keyword_only)
        self.index = {p.name: i for i, p in enumerate(params)}
        self.defaults = tuple(p.default for p in params)
        self.checks = tuple((i, p.check, p.name) for i, p in enumerate(params))
        self.call_check = declared.check
        assert declared.signature is not None
        sig = declared.signature
        # Without self: the arguments a caller passes.
        self.signature = sig.replace(parameters=list(sig.parameters.values())[1:])

    def bind(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """The checked values as an implementation is called with them: positional, then
        keyword-only by name."""
        values = self.checked(args, kwargs)
        if not self.keyword_names:
            return values, _NONE
        n = self.n_positional
        return values[:n], dict(zip(self.keyword_names, values[n:]))

    def checked(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Any]:
        """The checked values in parameter order; TypeError for a call that does not fit the
        signature (as Python's own), InvalidRequest (or the check's error) for bad values."""
        n = len(args)
        if n > self.n_positional:
            self._mismatch(args, kwargs)
        values = [*args, *self.defaults[n:]]
        if kwargs:
            index = self.index
            for key, value in kwargs.items():
                i = index.get(key, -1)
                if i < n:
                    self._mismatch(args, kwargs)
                values[i] = value
        if n < self.n_required and any(value is _EMPTY for value in values):
            self._mismatch(args, kwargs)
        for i, check, name in self.checks:
            values[i] = check(values[i], name)
        if self.call_check is not None:
            self.call_check(**dict(zip(self.names, values)))
        return values

    def _mismatch(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.signature.bind(*args, **kwargs)  # raises the TypeError a plain call would
        raise TypeError(f"arguments do not fit {self.signature}")  # pragma: no cover
