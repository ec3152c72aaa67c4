"""Domain values and the error hierarchy."""

from travian_repo.domain.errors import *  # noqa: F403
from travian_repo.domain.errors import __all__ as _errors_all
from travian_repo.domain.values import *  # noqa: F403
from travian_repo.domain.values import __all__ as _values_all

__all__ = [*_errors_all, *_values_all]
