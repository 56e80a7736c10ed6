"""wattbill's tariff engine: tariff files, an exact ``Decimal`` reference and numba kernels.

Pure: imports nothing of wattbill's, reads no file but tariff TOML. See ``docs/interfaces.md``.
"""

from .errors import TariffError, TariffFileError, UnknownTariffError, UnpricedRegisterError
from .kernels import RunningCharge, YearBills, bill_households, running_charge
from .model import (
    REGISTERS,
    Catalog,
    HouseholdBonus,
    Problem,
    Tariff,
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
    "UnknownTariffError",
    "UnpricedRegisterError",
    "YearBills",
    "bill_households",
    "check_tariff_file",
    "load_catalog",
    "parse_tariff",
    "read_tariff",
    "reference_bill",
    "running_charge",
]
