"""Clinker process CO2 in full (kpi.clinker_co2): deductions, CKD/bypass dust, raw-meal TOC, by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi.clinker_co2 import (
    DEFAULT_RAWMEAL_PER_CLINKER,
    DEFAULT_RAWMEAL_TOC,
    SUBSTITUTE_DEDUCTIONS,
    ClinkerOxides,
    ClinkerProcessInputs,
    LabelledDefault,
    SubstituteUse,
    ckd_calcination_rate,
    ckd_emission_factor,
    clinker_process_co2,
    default_ckd_calcination_rate,
)
from kpi.co2 import CLINKER_PROCESS_FACTORS

CSI = CLINKER_PROCESS_FACTORS["csi"]


def test_deduction_table_is_the_ets_table():
    # domain.md §5.1, China ETS 2025 cement guideline [CONFIRMED-2nd], by guideline (zh) name.
    expected = {
        0.600: {"脱硫粉剂（氢氧化钙）", "熟石灰"},
        0.480: {"电石渣", "镁渣"},
        0.375: {"造纸白泥", "氟化钙污泥", "磷渣"},
        0.305: {"钒钛渣", "氮渣", "飞灰", "铁合金炉渣"},
        0.245: {"脱硫石膏", "磷石膏", "钛石膏", "氟石膏", "硼石膏", "模型石膏", "柠檬酸渣"},
        0.215: {"钢渣", "镍渣"},
        0.135: {"锰渣", "锌渣", "锡渣"},
        0.055: {"市政污泥", "铝渣", "硫酸渣", "铜渣", "铅锌渣", "粉煤灰", "赤泥"},
    }
    by_factor: dict[float, set[str]] = {}
    for row in SUBSTITUTE_DEDUCTIONS.values():
        by_factor.setdefault(row.deduction_t_per_t, set()).add(row.name_zh)
        assert row.confidence == "CONFIRMED-2nd"
        assert "ETS" in row.source
    assert by_factor == expected
    assert len(SUBSTITUTE_DEDUCTIONS) == 30


def test_ets_month_with_two_substitute_materials():
    # 100 000 t Portland clinker × 0.535 = 53 500 t;
    # carbide slag 8 000 t × 0.480 = 3 840 t, steel slag 5 000 t × 0.215 = 1 075 t → deductions 4 915 t;
    # E_process = 53 500 − 4 915 = 48 585 t (0.48585 t/t clinker).
    r = clinker_process_co2(
        ClinkerProcessInputs(
            100_000.0,
            substitutes=(SubstituteUse("carbide_slag", 8000.0), SubstituteUse("steel_slag", 5000.0)),
        )
    )
    assert r.calcination_t == pytest.approx(53_500.0)
    assert r.deductions_t == pytest.approx(3840.0 + 1075.0)
    assert r.total_t == pytest.approx(48_585.0)
    assert (r.dust_t, r.toc_t, r.flags) == (0.0, 0.0, ())
    items = r.provenance["substitutes"]["items"]
    assert [(i["name_zh"], i["deduction_t_per_t"], i["co2_t"]) for i in items] == [
        ("电石渣", 0.480, pytest.approx(3840.0)),
        ("钢渣", 0.215, pytest.approx(1075.0)),
    ]
    assert r.provenance["method"] == "default_factor"
    assert r.provenance["clinker_factor"]["t_per_t"] == 0.535
    assert r.provenance["clinker_factor"]["confidence"] == "CONFIRMED-2nd"


def test_deductions_above_calcination_are_floored_and_flagged():
    # 1 000 t × 0.535 = 535 t; slaked lime 1 000 t × 0.600 = 600 t > 535 t → max(0, −65) = 0, flagged.
    r = clinker_process_co2(ClinkerProcessInputs(1000.0, substitutes=(SubstituteUse("slaked_lime", 1000.0),)))
    assert r.calcination_t == pytest.approx(535.0)
    assert r.deductions_t == pytest.approx(600.0)
    assert r.total_t == 0.0
    assert r.flags == ("deductions_exceed_calcination",)
    assert r.provenance["flags"] == ["deductions_exceed_calcination"]


def test_substitute_validation():
    with pytest.raises(ValueError, match="unknown substitute material"):
        SubstituteUse("granite", 10.0)
    with pytest.raises(ValueError, match="mass_t"):
        SubstituteUse("steel_slag", -1.0)


def test_oxide_worked_example_through_the_full_method():
    # domain.md §5.1: 65 % CaO, 2 % MgO → 0.65 × 44/56 + 0.02 × 44/40 = 0.51071 + 0.022 = 0.53271 ≈ 0.533;
    # 1 000 t clinker → 532.71 t, no dust, no TOC.
    r = clinker_process_co2(ClinkerProcessInputs(1000.0, oxides=ClinkerOxides(0.65, 0.02)))
    assert r.ef_clinker_t_per_t == pytest.approx(0.533, abs=5e-4)
    assert r.total_t == pytest.approx(1000.0 * (0.65 * 44 / 56 + 0.02 * 44 / 40))
    assert r.provenance["method"] == "oxide (GB/T 32151.8-2015)"
    assert r.provenance["clinker_factor"]["source"] == "plant lab"


def test_ckd_emission_factor_by_hand():
    # EF_cli = 0.525, d = 0.5: x = 0.525 / 1.525 = 0.344262…; x × d = 0.172131…;
    # EF_CKD = 0.172131 / (1 − 0.172131) = 0.172131 / 0.827869 = 0.207921 (exactly 21/101).
    assert ckd_emission_factor(0.525, 0.5) == pytest.approx(0.207921, abs=1e-6)
    assert ckd_emission_factor(0.525, 0.5) == pytest.approx(21 / 101)
    # d = 0: uncalcined dust carries no CO2; d = 1: x / (1 − x) = 0.525 → fully calcined like clinker.
    assert ckd_emission_factor(0.525, 0.0) == 0.0
    assert ckd_emission_factor(0.525, 1.0) == pytest.approx(0.525)


def test_ckd_calcination_rate_from_loss_on_ignition():
    # f_CKD = 0.10, f_RM = 0.35: d = 1 − 0.10 × 0.65 / (0.90 × 0.35) = 1 − 0.065 / 0.315 = 0.793651.
    assert ckd_calcination_rate(0.10, 0.35) == pytest.approx(1 - 0.065 / 0.315)
    assert ckd_calcination_rate(0.10, 0.35) == pytest.approx(0.793651, abs=1e-6)
    assert ckd_calcination_rate(0.35, 0.35) == pytest.approx(0.0)  # dust = raw meal: nothing calcined
    assert ckd_calcination_rate(0.0, 0.35) == 1.0  # no CO2 left: fully calcined


@pytest.mark.parametrize(
    ("f_ckd", "f_rm", "match"),
    [
        (0.40, 0.35, "f_co2_ckd"),
        (-0.1, 0.35, "f_co2_ckd"),
        (0.1, 0.0, "f_co2_rawmeal"),
        (0.1, 1.0, "f_co2_rawmeal"),
    ],
)
def test_ckd_calcination_rate_rejects_impossible_lab_values(f_ckd, f_rm, match):
    with pytest.raises(ValueError, match=match):
        ckd_calcination_rate(f_ckd, f_rm)


def test_default_d_by_kiln_type():
    # CSI v3 [CONFIRMED]: d = 0 for dry-process kilns, 1 for other kiln types without data.
    assert default_ckd_calcination_rate("dry") == 0.0
    for kiln in ("semi_dry", "semi_wet", "wet", "shaft"):
        assert default_ckd_calcination_rate(kiln) == 1.0
    with pytest.raises(ValueError, match="kiln_type"):
        default_ckd_calcination_rate("rotary")  # type: ignore[arg-type]


def test_dust_uses_the_kiln_type_default_when_d_is_not_given():
    # 1 000 t clinker at CSI 0.525, 100 t CKD. Dry kiln: d = 0 → no dust CO2.
    dry = clinker_process_co2(ClinkerProcessInputs(1000.0, factor=CSI, ckd_t=100.0))
    assert dry.dust_t == 0.0
    assert dry.provenance["dust"]["ckd_calcination"] == 0.0
    assert "default" in dry.provenance["dust"]["ckd_calcination_source"]
    # Wet kiln: d = 1 → EF_CKD = EF_cli = 0.525, 100 t × 0.525 = 52.5 t.
    wet = clinker_process_co2(ClinkerProcessInputs(1000.0, factor=CSI, ckd_t=100.0, kiln_type="wet"))
    assert wet.dust_t == pytest.approx(52.5)
    assert wet.total_t == pytest.approx(525.0 + 52.5)


def test_ckd_and_bypass_dust_with_measured_d():
    # 1 000 t clinker at CSI 0.525 = 525 t; CKD 200 t at d = 0.5 → 200 × 21/101 = 41.584 t;
    # bypass dust 50 t, fully calcined → 50 × 0.525 = 26.25 t; total 525 + 41.584 + 26.25 = 592.834 t.
    r = clinker_process_co2(
        ClinkerProcessInputs(1000.0, factor=CSI, ckd_t=200.0, bypass_dust_t=50.0, ckd_calcination=0.5)
    )
    assert r.ef_ckd_t_per_t == pytest.approx(21 / 101)
    assert r.dust_t == pytest.approx(200.0 * 21 / 101 + 50.0 * 0.525)
    assert r.total_t == pytest.approx(525.0 + 41.584158 + 26.25)
    assert r.provenance["dust"]["ckd_calcination_source"] == "plant data"
    assert r.provenance["dust"]["confidence"] == "CONFIRMED"


def test_toc_term_counts_only_when_given():
    no_toc = clinker_process_co2(ClinkerProcessInputs(1000.0))
    assert no_toc.toc_t == 0.0
    assert no_toc.provenance["toc"]["counted"] is False
    # Labelled CSI defaults [UNCONFIRMED]: 1 000 t × 1.55 = 1 550 t raw meal × 0.002 × 44/12 = 11.367 t.
    default = clinker_process_co2(ClinkerProcessInputs(1000.0, toc=DEFAULT_RAWMEAL_TOC))
    assert default.toc_t == pytest.approx(1550.0 * 0.002 * 44 / 12)
    assert default.toc_t == pytest.approx(11.367, abs=1e-3)
    toc = default.provenance["toc"]
    assert toc["toc"]["confidence"] == "UNCONFIRMED"
    assert toc["rawmeal_basis"]["rawmeal_per_clinker"]["confidence"] == "UNCONFIRMED"
    assert (DEFAULT_RAWMEAL_TOC.value, DEFAULT_RAWMEAL_PER_CLINKER.value) == (0.002, 1.55)
    # Lab TOC 0.15 % on 1 600 t weighed kiln feed: 1 600 × 0.0015 × 44/12 = 8.8 t.
    lab = clinker_process_co2(ClinkerProcessInputs(1000.0, toc=0.0015, rawmeal_t=1600.0))
    assert lab.toc_t == pytest.approx(8.8)
    assert lab.provenance["toc"]["toc"]["source"] == "plant data"
    # Lab TOC with a plant raw-meal ratio: 1 000 × 1.6 × 0.0015 × 44/12 = 8.8 t.
    ratio = clinker_process_co2(ClinkerProcessInputs(1000.0, toc=0.0015, rawmeal_per_clinker=1.6))
    assert ratio.toc_t == pytest.approx(8.8)


def test_full_csi_month_worked_example():
    # docs/kpi.md worked example. 100 000 t clinker, lab 65 % CaO / 2 % MgO → EF_cli = 0.532714;
    # calcination 100 000 × 0.532714 = 53 271.43 t.
    # CKD 1 500 t, LOI f_CKD 0.10 / f_RM 0.35 → d = 0.793651; x = 0.532714 / 1.532714 = 0.347563;
    # x·d = 0.275843; EF_CKD = 0.275843 / 0.724157 = 0.380917 → 571.38 t.
    # Bypass 800 t × 0.532714 = 426.17 t. TOC default: 155 000 t × 0.002 × 44/12 = 1 136.67 t.
    # Total 53 271.43 + 571.38 + 426.17 + 1 136.67 = 55 405.64 t (0.554 t/t).
    r = clinker_process_co2(
        ClinkerProcessInputs(
            100_000.0,
            oxides=ClinkerOxides(0.65, 0.02),
            ckd_t=1500.0,
            bypass_dust_t=800.0,
            ckd_calcination=ckd_calcination_rate(0.10, 0.35),
            toc=DEFAULT_RAWMEAL_TOC,
        )
    )
    assert r.calcination_t == pytest.approx(53_271.43, abs=0.01)
    assert r.ef_ckd_t_per_t == pytest.approx(0.380917, abs=1e-6)
    assert r.dust_t == pytest.approx(571.38 + 426.17, abs=0.01)
    assert r.toc_t == pytest.approx(1136.67, abs=0.01)
    assert r.total_t == pytest.approx(55_405.64, abs=0.01)


def test_deductions_may_combine_with_gross_oxides_but_not_with_non_carbonate_parts():
    # Gross oxides (no _nc parts) + ETS deduction: 1 000 × 0.532714 − 100 × 0.480 = 532.714 − 48 = 484.714 t.
    gross = clinker_process_co2(
        ClinkerProcessInputs(
            1000.0, oxides=ClinkerOxides(0.65, 0.02), substitutes=(SubstituteUse("carbide_slag", 100.0),)
        )
    )
    assert gross.total_t == pytest.approx(1000.0 * (0.65 * 44 / 56 + 0.022) - 48.0)
    with pytest.raises(ValueError, match="non-carbonate"):
        ClinkerProcessInputs(
            1000.0,
            oxides=ClinkerOxides(0.65, 0.02, 0.01),
            substitutes=(SubstituteUse("carbide_slag", 100.0),),
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clinker_t": -1.0}, "clinker_t"),
        ({"clinker_t": float("nan")}, "clinker_t"),
        ({"clinker_t": 1.0, "ckd_t": -5.0}, "ckd_t"),
        ({"clinker_t": 1.0, "bypass_dust_t": -5.0}, "bypass_dust_t"),
        ({"clinker_t": 1.0, "ckd_calcination": 1.5}, "ckd_calcination"),
        ({"clinker_t": 1.0, "ckd_calcination": -0.1}, "ckd_calcination"),
        ({"clinker_t": 1.0, "toc": 0.2 * 100}, "toc"),
        ({"clinker_t": 1.0, "toc": LabelledDefault(-0.1, "x", "y", "UNCONFIRMED")}, "toc"),
        ({"clinker_t": 1.0, "rawmeal_t": -1.0}, "rawmeal_t"),
        ({"clinker_t": 1.0, "rawmeal_per_clinker": -1.55}, "rawmeal_per_clinker"),
        ({"clinker_t": 1.0, "kiln_type": "rotary"}, "kiln_type"),
    ],
)
def test_inputs_reject_negative_masses_and_fractions_outside_unit_interval(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClinkerProcessInputs(**kwargs)


def test_oxides_are_validated_on_construction():
    with pytest.raises(ValueError, match="cao"):
        ClinkerOxides(65.0, 2.0)
    with pytest.raises(ValueError, match="non-carbonate"):
        ClinkerOxides(0.65, 0.02, 0.70)


@given(ef=st.floats(0.0, 1.0), d1=st.floats(0.0, 1.0), d2=st.floats(0.0, 1.0))
def test_ckd_factor_is_monotone_in_d_and_between_zero_and_clinker_factor(ef, d1, d2):
    lo, hi = sorted((d1, d2))
    e_lo, e_hi = ckd_emission_factor(ef, lo), ckd_emission_factor(ef, hi)
    assert 0.0 <= e_lo <= e_hi <= ef * (1 + 1e-12)


@given(f_rm=st.floats(0.01, 0.6), share=st.floats(0.0, 1.0))
def test_calcination_rate_from_loi_is_a_fraction(f_rm, share):
    d = ckd_calcination_rate(f_rm * share, f_rm)
    assert -1e-12 <= d <= 1.0


@given(
    clinker=st.floats(0.0, 2e5),
    ckd=st.floats(0.0, 5e3),
    bypass=st.floats(0.0, 5e3),
    d=st.floats(0.0, 1.0),
    toc=st.floats(0.0, 0.005),
    slag=st.floats(0.0, 1e4),
)
def test_total_is_the_sum_of_its_terms(clinker, ckd, bypass, d, toc, slag):
    r = clinker_process_co2(
        ClinkerProcessInputs(clinker, ckd_t=ckd, bypass_dust_t=bypass, ckd_calcination=d, toc=toc,
                             substitutes=(SubstituteUse("steel_slag", slag),))
    )  # fmt: skip
    assert r.total_t >= 0.0
    expected = max(0.0, r.calcination_t - r.deductions_t) + r.dust_t + r.toc_t
    assert r.total_t == pytest.approx(expected, rel=1e-12, abs=1e-9)
    assert (r.deductions_t > r.calcination_t) == bool(r.flags)
