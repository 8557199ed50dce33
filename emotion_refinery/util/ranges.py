"""The range of every numeric setting, stated once: the settings' dataclasses and functions check their values
with it, and the command line turns it into its option types (shown in ``--help``).

Bounds are generous enough for real use and tight enough that nothing runs away (no list of a trillion rounds,
no 10^20 files). A value outside is refused with the house form::

    Received: rounds=1000000000000; expected an integer in [1, 100]
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from emotion_refinery.errors import EmorefineError

__all__ = ["Range", "SEED", "FOLDS", "WORKERS", "SEGMENT_HOP", "ROUND", "ROUNDS", "EPOCHS", "PATIENCE",
           "SHARE", "check_ranges"]


@dataclasses.dataclass(frozen=True)
class Range:
    """``low`` to ``high``, each bound closed unless ``low_open`` / ``high_open``; whole numbers only when
    ``integer``. ``what`` names the kind of value in messages ("an integer", "a number", "a share")."""

    low: float
    high: float
    integer: bool = True
    low_open: bool = False
    high_open: bool = False
    what: str | None = None

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.integer else numbers.Real):
            return False
        if not self.integer and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        """``an integer in [1, 100]``, ``a number in (0, 1]``."""
        what = self.what or ("an integer" if self.integer else "a number")
        return (f"{what} in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}"
                f"{')' if self.high_open else ']'}")

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`EmorefineError` ``Received: name=value; expected …`` for a value outside."""
        if value not in self:
            raise EmorefineError(f"Received: {name}={value!r}; expected {self}")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_ranges(settings: Any, ranges: dict[str, Range]) -> None:
    """:meth:`Range.check` of every field of ``settings`` named in ``ranges`` (``None`` values are unset
    optional settings and pass)."""
    for name, r in ranges.items():
        value = getattr(settings, name)
        if value is not None:
            r.check(name, value)


#: Seeds of folds, trainings and synthetic corpora: what NumPy's and scikit-learn's generators accept.
SEED = Range(0, 2**32 - 1)
#: Cross-validation folds (leave-one-speaker-out on a corpus of 91 speakers fits).
FOLDS = Range(2, 100)
#: Processes for decoding and features.
WORKERS = Range(1, 256)
#: Frames between segment starts (1 = 10 ms; 100: one segment a second).
SEGMENT_HOP = Range(1, 100)
#: Rounds of a refine run, and the index of one (``--round``).
ROUNDS = Range(1, 100)
ROUND = Range(0, ROUNDS.high - 1)
#: Epochs of a fold's training, and its early-stopping patience.
EPOCHS = Range(1, 1000)
PATIENCE = Range(0, 1000)
#: A share of labels or votes, in [0, 1).
SHARE = Range(0, 1, integer=False, high_open=True, what="a share")
