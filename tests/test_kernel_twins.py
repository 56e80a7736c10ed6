"""Every numba kernel and the test that checks it, compiled and as its plain twin (``py_func``), against an
independent reference: the Decimal reference of the tariffs, values worked by hand, a rule written row by
row in the test, or a plain numpy / polars expression written in the test (never the kernel against its
own compiled self). Helpers inlined into a kernel are checked through it; ``tests.twins`` swaps every
kernel for its twin at once, so that a twin calls the twins of its helpers.

:func:`test_the_table_names_every_kernel` fails when a kernel is added without a line here, or a line names
a test that does not exist.

=================================================  =================================================================
kernel                                             independent reference (test)
=================================================  =================================================================
wattbill._arrow.valid                              tests/app/test_arrow.py::test_validity_bits_by_hand (bits by hand)
wattbill._arrow.plain_view_bytes                   tests/app/test_arrow.py::test_plain_view_bytes_follows_the_rule (rule row by row)
wattbill._arrow.view_codes                         tests/app/test_arrow.py::test_view_codes_name_every_row (each row's string)
wattbill._arrow.view_changes                       tests/app/test_arrow.py::test_view_changes_rule (hand-worked)
wattbill.synth._daily_total                        tests/test_kernel_twins.py::test_synth_kernels_follow_their_formulas (numpy)
wattbill.synth._split_registers                    tests/test_kernel_twins.py::test_synth_kernels_follow_their_formulas (numpy, sums)
wattbill.ingest.kernels._int_digits                tests/ingest/test_kernels.py::test_register_deltas (ref_deltas, read by read)
wattbill.ingest.kernels._below                     tests/ingest/test_kernels.py::test_register_deltas (ref_deltas, read by read)
wattbill.ingest.kernels.register_deltas            tests/ingest/test_kernels.py::test_register_deltas (ref_deltas; hand examples)
wattbill.ingest.kernels.reconcile_periods          tests/ingest/test_kernels.py::test_reconcile_periods (rule day by day)
wattbill.ingest.kernels.plain_strings              tests/ingest/test_kernels.py::test_plain_strings (hand-worked)
wattbill.ingest.kernels.spike_days                 tests/ingest/test_kernels.py::test_spike_days (numpy median rule)
wattbill.tariffs.kernels.prorate                   tests/tariffs/test_kernels.py::test_range_sums_and_prorate (Decimal reference)
wattbill.tariffs.kernels.range_sums                tests/tariffs/test_kernels.py::test_range_sums_and_prorate (Decimal reference)
wattbill.tariffs.kernels.bill_kernel               tests/tariffs/test_kernels.py::test_random_tariffs_and_usage (Decimal reference)
wattbill.diagnostics.kernels._select               tests/diagnostics/test_kernel_reference.py::test_quantile_selection_matches_numpy
wattbill.diagnostics.kernels._quantile_inplace     tests/diagnostics/test_kernel_reference.py::test_quantile_selection_matches_numpy
wattbill.diagnostics.kernels._quantile             tests/diagnostics/test_kernel_reference.py::test_quantile_selection_matches_numpy
wattbill.diagnostics.kernels.sort_days             tests/diagnostics/test_fast_paths.py::test_sort_days_is_a_stable_sort (np.argsort)
wattbill.diagnostics.kernels._sort_days            tests/diagnostics/test_fast_paths.py::test_sort_days_is_a_stable_sort (np.argsort)
wattbill.diagnostics.kernels._sort_days_generic    tests/diagnostics/test_fast_paths.py::test_sort_days_is_a_stable_sort (np.argsort)
wattbill.diagnostics.kernels._sorted_quantile      tests/diagnostics/test_kernel_reference.py::test_kernel_matches_reference (Python)
wattbill.diagnostics.kernels._usage_one            tests/diagnostics/test_kernel_reference.py::test_kernel_matches_reference (Python)
wattbill.diagnostics.kernels._usage_core           tests/diagnostics/test_kernel_reference.py::test_kernel_matches_reference (Python)
wattbill.diagnostics.kernels._scratch              tests/diagnostics/test_kernel_reference.py::test_kernel_matches_reference (Python)
wattbill.diagnostics.kernels._calendar             tests/diagnostics/test_kernel_reference.py::test_kernel_matches_reference (Python)
wattbill.diagnostics.kernels._month_start          tests/diagnostics/test_kernel_reference.py::test_row_kernels_match_reference (numpy)
wattbill.diagnostics.kernels._month_ends           tests/diagnostics/test_kernel_reference.py::test_row_kernels_match_reference (numpy)
wattbill.diagnostics.kernels.usage_rows            tests/diagnostics/test_kernel_reference.py::test_kernel_matches_reference (Python)
wattbill.diagnostics.kernels._count                tests/diagnostics/test_kernel_reference.py::test_row_kernels_match_reference (Python)
wattbill.diagnostics.kernels.usage_runs            tests/diagnostics/test_kernel_reference.py::test_row_kernels_match_reference (Python)
wattbill.diagnostics.kernels._sorted_month_sums    tests/diagnostics/test_kernel_reference.py::test_row_kernels_match_reference (numpy)
wattbill.diagnostics.kernels.payments_kernel       tests/diagnostics/test_fast_paths.py::test_payments_kernel_twin (polars group_by)
wattbill.diagnostics.kernels.count_days            tests/diagnostics/test_kernel_reference.py::test_month_sums_and_count_days_equal_numpy
wattbill.diagnostics.kernels.month_sums            tests/diagnostics/test_kernel_reference.py::test_month_sums_and_count_days_equal_numpy
wattbill.diagnostics.kernels.month_sums_runs       tests/diagnostics/test_kernel_reference.py::test_row_kernels_match_reference (numpy)
wattbill.diagnostics.whatif._shift_kernel          tests/diagnostics/test_fast_paths.py::test_shift_into_a_buffer_equals_the_new_array (numpy)
wattbill.diagnostics.whatif._gather_kernel         tests/diagnostics/test_fast_paths.py::test_gather_rows (numpy indexing)
wattbill.diagnostics.dense._sum                    tests/test_kernel_twins.py::test_densify_twins_equal_a_polars_group_by
wattbill.diagnostics.dense._run_bits               tests/diagnostics/test_fast_paths.py::test_run_bits (numpy)
wattbill.diagnostics.dense._day_span               tests/test_kernel_twins.py::test_densify_twins_equal_a_polars_group_by
wattbill.diagnostics.dense._classify_run           tests/test_kernel_twins.py::test_densify_twins_equal_a_polars_group_by
wattbill.diagnostics.dense._row_regs               tests/test_kernel_twins.py::test_densify_twins_equal_a_polars_group_by
wattbill.diagnostics.dense._write_run              tests/test_kernel_twins.py::test_densify_twins_equal_a_polars_group_by
wattbill.diagnostics.dense._scatter                tests/test_kernel_twins.py::test_densify_twins_equal_a_polars_group_by
wattbill.diagnostics.paykernels.take_codes         tests/diagnostics/test_payments_peers.py::test_codes_of_bill_months_equal_starts_with
wattbill.diagnostics.paykernels.mix_codes          tests/diagnostics/test_payments_peers.py::test_channel_mix_equals_the_unique (key by key)
wattbill.diagnostics.paykernels.order_keys         tests/diagnostics/test_payments_peers.py::test_radix_sort_and_keys_order_as_numpy (np.sort)
wattbill.diagnostics.paykernels._digit             tests/diagnostics/test_payments_peers.py::test_radix_sort_and_keys_order_as_numpy (np.sort)
wattbill.diagnostics.paykernels.radix_sort         tests/diagnostics/test_payments_peers.py::test_radix_sort_and_keys_order_as_numpy (np.sort)
wattbill.diagnostics.paykernels.rank_pct           tests/diagnostics/test_payments_peers.py::test_rank_pct_small (hand-worked; polars windows)
=================================================  =================================================================
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.diagnostics.test_fast_paths import reference_dense
from tests.strategies import daily_cases
from tests.twins import swap_in_plain_twins

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("wattbill", "ingest", "store", "tariffs", "diagnostics", "labels", "bills")


def _table() -> dict[str, str]:
    rows = [line.split(None, 1) for line in (__doc__ or "").splitlines() if line.startswith("wattbill.")]
    return {name: rest for name, rest in rows}


def test_the_table_names_every_kernel():
    from numba.core.registry import CPUDispatcher

    from wattbill.warm import KERNEL_MODULES

    # every module with a kernel is a kernel module (warmed by setup, swapped by tests.twins)
    with_kernels = set()
    for folder in PRODUCT:
        for path in (REPO / folder).rglob("*.py"):
            if re.search(r"^@(nb|numba)\.(njit|jit)\b", path.read_text("utf-8"), re.M):
                rel = path.relative_to(REPO).with_suffix("")
                parts = rel.parts if rel.parts[0] == "wattbill" else ("wattbill", *rel.parts)
                with_kernels.add(".".join(parts))
    assert with_kernels == set(KERNEL_MODULES)
    found = set()
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        found |= {f"{name}.{attr}" for attr, value in vars(module).items()
                  if isinstance(value, CPUDispatcher) and value.__module__ == name}
    table = _table()
    assert found == set(table)
    for name, rest in table.items():
        test = re.search(r"(tests/\S+\.py)::(test_\w+)", rest)
        assert test, name
        assert re.search(rf"def {test.group(2)}\(", (REPO / test.group(1)).read_text("utf-8")), rest


# --- kernels without a reference elsewhere ---------------------------------------------------------------


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
def test_synth_kernels_follow_their_formulas(use_py, monkeypatch):
    from wattbill import synth

    if use_py:
        swap_in_plain_twins(monkeypatch)
    f32 = np.float32
    rng = np.random.default_rng(5)
    m, days = 7, 40
    base, act, cool, heat = (rng.uniform(100, 9000, m).astype(f32) for _ in range(4))
    week, summer, winter = (rng.uniform(0, 2, days).astype(f32) for _ in range(3))
    z = rng.standard_normal((m, days), dtype=f32)
    u_cool, u_heat = rng.random((m, days), dtype=f32), rng.random((m, days), dtype=f32)
    total = synth._daily_total(base, act, cool, heat, week, summer, winter, z, u_cool, u_heat)
    want = (base[:, None] + act[:, None] * week * np.exp(f32(0.18) * z)
            + cool[:, None] * summer * (f32(0.8) + f32(0.4) * u_cool)
            + heat[:, None] * winter * (f32(0.8) + f32(0.4) * u_heat))
    assert total.dtype == np.float32
    np.testing.assert_allclose(total, want, rtol=2e-6)

    total[0, :5] = [-3.0, 0.0, 9.0, 19.99, 1e6]  # below zero, under 10 Wh, just under 20 Wh, a big day
    shares = rng.dirichlet([1, 4, 3, 2], m).astype(f32)
    z_valley = rng.standard_normal((m, days), dtype=f32) * f32(9)  # some days of extreme noise
    z_flat = rng.standard_normal((m, days), dtype=f32)
    regs = synth._split_registers(total, shares, z_valley, z_flat)
    t10 = (np.maximum(total, 0) / f32(10)).astype(np.int32)  # whole units of 10 Wh, truncated
    assert regs.dtype == np.int32 and (regs >= 0).all() and (regs % 10 == 0).all()
    assert (regs.sum(axis=2) == t10 * 10).all()  # the registers add up to the day exactly
    tf = t10.astype(f32)
    sharp = (tf * shares[:, 0:1]).astype(np.int32)
    assert (regs[..., 0] == sharp * 10).all()
    valley = np.maximum((tf * shares[:, 3:4] * (f32(1) + f32(0.06) * z_valley)).astype(np.int32), 0)
    flat = np.maximum((tf * shares[:, 2:3] * (f32(1) + f32(0.06) * z_flat)).astype(np.int32), 0)
    peak = t10 - sharp - valley - flat
    assert (regs[..., 2] == flat * 10).all()
    assert (regs[..., 1] == np.maximum(peak, 0) * 10).all()
    assert (regs[..., 3] == np.where(peak < 0, valley + peak, valley) * 10).all()
    assert regs[0, :4].sum(axis=1).tolist() == [0, 0, 0, 10]


@pytest.mark.parametrize("use_py", [False, True], ids=["njit", "py_func"])
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=daily_cases(max_households=5))
def test_densify_twins_equal_a_polars_group_by(use_py, monkeypatch, case):
    """``densify``'s scatter (and its helpers), compiled and as plain twins, against a polars group_by."""
    from wattbill.diagnostics import densify

    with monkeypatch.context() as m:
        if use_py:
            swap_in_plain_twins(m)
        d = densify(case.daily, case.customers, case.year, with_regs=True)
    total, present, tou, est, reg_sum, tou_total, regs = reference_dense(case.daily, case.customers, case.year)
    assert (d.total == total).all() and (d.present == present).all() and (d.tou == tou).all()
    assert (d.estimated == est).all() and (d.regs == regs).all()
    assert (d.reg_sum == reg_sum).all() and (d.tou_total == tou_total).all()
