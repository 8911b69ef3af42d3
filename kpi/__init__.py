"""Pure energy and carbon KPI computation to the Chinese national standards. No I/O, no clock.

Modules (see ``docs/kpi.md`` for every formula, its source and confidence label):

- ``kernels``: numba kernels from readings to per-bucket quantities and coverage (totalisers, rates, analogs).
- ``periods``: epoch-aligned base buckets, local-time periods (hour, shift, day, month, year), rollup.
- ``units``: unit normalisation and standard-coal conversion (GB/T 2589-2020).
- ``standards``: GB 16780-2021 grade tables, corrections, NDRC benchmark/baseline and bands.
- ``co2``: fuel (with biogenic memo), purchased electricity and heat CO2; default and grid factors.
- ``clinker_co2``: clinker process CO2: oxides or default factor, substitute deductions, kiln dust, TOC.
- ``clinker``: the clinker-line indicators of one line and period.
- ``cement``: cement comprehensive energy with the clinker-ratio correction; metered vs inventory clinker.
- ``carbonates``: carbonate and carbon-powder process CO2 of glass and ceramics.
- ``furnace``: the energy and CO2 totals shared by glass furnaces and ceramic kilns.
- ``glass``: float and PV rolled glass (GB 21340-2019). ``ceramics``: tiles, panels, sanitary ware
  (GB 21252-2023).
- ``deviation``: a line's energy baseline (a + b × output) and CUSUM/EWMA drift detection with hysteresis.
- ``targets``: plant targets against a base year, trajectories and combined grade/band/target flags.
- ``confidence``: the confidence labels every standard value and factor carries.
"""
