"""wattbill's tariff engine: tariff files, an exact ``Decimal`` reference and numba kernels.

Pure: imports nothing of wattbill's, reads no file but tariff TOML. See ``docs/interfaces.md``.

- :mod:`tariffs.model`: ``Tariff`` (frozen, validated), ``parse_tariff``, ``read_tariff``,
  ``check_tariff_file`` (every problem with its TOML key), ``load_catalog`` -> ``Catalog``
  (``get(code, on)``, ``schedule(code, year)`` -> ``TariffSchedule``, the versions in force during a
  year, ``codes()``, ``alternatives(code)``).
- :mod:`tariffs.reference`: ``reference_bill``, the calculation rules stated in plain ``Decimal``
  code (read its docstring for the exact rules: tiers, proportional period shares, ``unsplit`` kWh,
  proration, household bonus, rounding).
- :mod:`tariffs.kernels`: ``bill_households`` -> ``YearBills`` and ``running_charge`` ->
  ``RunningCharge``, numba kernels in integer arithmetic equal to the reference to the fen.
- :mod:`tariffs.errors`: ``TariffError`` and its subclasses.
- ``tariffs/catalog/*.toml``: the shipped tariffs, each with its ``source``.
"""

from .errors import (
    TariffError,
    TariffFileError,
    TariffNotInForceError,
    UnknownTariffError,
    UnpricedRegisterError,
)
from .kernels import RunningCharge, YearBills, bill_households, running_charge
from .model import (
    REGISTERS,
    Catalog,
    HouseholdBonus,
    Problem,
    Tariff,
    TariffSchedule,
    as_schedule,
    check_tariff_file,
    load_catalog,
    parse_tariff,
    read_tariff,
)
from .reference import ReferenceBill, ReferenceMonth, reference_bill

__all__ = [
    "REGISTERS",
    "Catalog",
    "HouseholdBonus",
    "Problem",
    "ReferenceBill",
    "ReferenceMonth",
    "RunningCharge",
    "Tariff",
    "TariffError",
    "TariffFileError",
    "TariffNotInForceError",
    "TariffSchedule",
    "UnknownTariffError",
    "UnpricedRegisterError",
    "YearBills",
    "as_schedule",
    "bill_households",
    "check_tariff_file",
    "load_catalog",
    "parse_tariff",
    "read_tariff",
    "reference_bill",
    "running_charge",
]
