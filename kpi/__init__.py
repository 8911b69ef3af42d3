"""Pure energy and carbon KPI computation to the Chinese national standards. No I/O, no clock.

Modules (see ``docs/kpi.md`` for every formula, its source and confidence label):

- ``kernels``: numba kernels from readings to per-bucket quantities and coverage (totalisers, rates, analogs).
- ``periods``: epoch-aligned base buckets, local-time periods (hour, shift, day, month, year), rollup.
- ``units``: unit normalisation and standard-coal conversion (GB/T 2589-2020).
- ``standards``: GB 16780-2021 grade tables, corrections, NDRC benchmark/baseline and bands.
- ``co2``: fuel, clinker-process and purchased-electricity CO2 with default factors and grid factors.
- ``clinker``: the clinker-line indicators of one line and period.
- ``confidence``: the confidence labels every standard value and factor carries.
"""
