"""Errors raised by the tariff engine.

Hierarchy::

    TariffError                      base; attributes ``file`` (str | None) and ``key`` (str | None)
    ├── TariffFileError              a tariff file (TOML) is unreadable or invalid; ``problems`` lists
    │                                every problem found (see ``tariffs.model.check_tariff_file``)
    ├── UnknownTariffError           a tariff code (or a code valid on a date) is not in the catalogue;
    │                                also a ``KeyError``
    ├── UnpricedRegisterError        a meter register has kWh but the tariff gives its period no price
    │                                (design rule 5: an error, not a zero); ``register`` and
    │                                ``households`` (row indices in a batch) say where
    └── TariffNotInForceError        an open day comes before the first version of the tariff in force
                                     (``tariffs.reference`` rule 6); ``households`` as above

The command line turns any ``TariffError`` into a one-line message and exit code 1; ``str(error)``
is that line (``file: key: message`` where known).
"""

from __future__ import annotations

from collections.abc import Sequence

from wattbill.errors import WattbillError


class TariffError(WattbillError):
    """Base of every tariff error.

    Parameters
    ----------
    message : str
        What went wrong, in one line.
    file : str, optional
        The tariff file concerned, where there is one.
    key : str, optional
        The TOML key concerned (dotted, e.g. ``tiers.thresholds``), where there is one.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.file = file
        self.key = key
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, self.message])


class TariffFileError(TariffError):
    """A tariff file that cannot be read or does not validate.

    Parameters
    ----------
    file : str
        The file (or origin string) concerned.
    key : str or None
        The TOML key of the first problem.
    message : str
        The first problem's message (with a count of further problems, if any).
    problems : sequence of Problem, optional
        Every problem found.
    """

    def __init__(self, file: str | None, key: str | None, message: str, problems: Sequence = ()) -> None:
        self.problems = list(problems)
        super().__init__(message, file=file, key=key)


class UnknownTariffError(TariffError, KeyError):
    """A tariff code that the catalogue does not hold (on the requested date)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return TariffError.__str__(self)


class UnpricedRegisterError(TariffError):
    """A register has kWh but its period has no price in the tariff (design rule 5).

    Parameters
    ----------
    tariff : str
        The tariff code.
    register : str
        The register (``sharp``, ``peak``, ``flat`` or ``valley``).
    households : sequence of int, optional
        Row indices (in the batch given to the kernels) of the households concerned.
    """

    def __init__(self, tariff: str, register: str, households: Sequence[int] = ()) -> None:
        self.tariff = tariff
        self.register = register
        self.households = list(households)
        where = f" (households at rows {self.households[:10]}{'…' if len(self.households) > 10 else ''})" if self.households else ""
        super().__init__(
            f"register {register!r} has kWh but tariff {tariff} gives it no priced period{where}",
            key=f"periods.{register}",
        )


class TariffNotInForceError(TariffError):
    """Open days before the first version of a tariff in force (``tariffs.reference`` rule 6).

    Parameters
    ----------
    tariff : str
        The tariff code.
    first : datetime.date
        The first day a version is in force.
    households : sequence of int, optional
        Row indices (in the batch given to the kernels) of the households concerned.
    """

    def __init__(self, tariff: str, first: object, households: Sequence[int] = ()) -> None:
        self.tariff = tariff
        self.first = first
        self.households = list(households)
        where = f" (households at rows {self.households[:10]}{'…' if len(self.households) > 10 else ''})" if self.households else ""
        super().__init__(f"tariff {tariff} is in force only from {first}: the account is open before{where}",
                         key="valid_from")
