"""Confidence labels carried by every standard value and factor in ``kpi``.

The labels are those of the project's domain reference sheet (``reference/domain.md``, "Confidence
labels"): a value read in a named public source is CONFIRMED, one read in someone else's transcription of the
standard is CONFIRMED-2nd, and best knowledge without a source is UNCONFIRMED. Anything below CONFIRMED must
stay a setting, so the label travels with the value into every KPI's provenance.
"""

from __future__ import annotations

from typing import Literal, get_args

Confidence = Literal["CONFIRMED", "CONFIRMED-2nd", "UNCONFIRMED"]

CONFIDENCE_LABELS: tuple[str, ...] = get_args(Confidence)
