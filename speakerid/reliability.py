"""How far to trust a measured offset: evidence features and a calibrated probability.

A clip's aggregated distance curve can have its minimum at the wrong shift: too few speaking
windows, a second dip almost as deep (a repeated syllable rhythm), a clip so short that each
shift is seen by few windows. Those wrong answers can carry a clip confidence like a right one's.
:func:`sync_evidence` reads, from a measurement's own curve and windows, what tells them apart,
and :func:`p_correct` turns it into the probability that the offset is within ±40 ms of the
truth (after a source's own offset), by a logistic model fitted on shifted clips of eval people
kept apart from the people it is checked on (``benchmarks/calibrate_reliability.py``;
docs/sync.md gives the figures).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SECOND_PEAK_EXCLUSION_MS = 80.0
"""The runner-up dip is looked for further than this from the best one (two video frames)."""

# logistic model: p = 1 / (1 + exp(-(b0 + b · features))), fitted by calibrate_reliability.py
P_COEF = {"bias": -2.0495, "log_confidence": 5.3703, "second_peak": -3.0951, "log_windows": 3.3722}
RELIABLE_P = 0.87
"""A result is marked reliable from this probability on: the lowest at which 99 % of the tuning
group's reliable answers were right (clean, under babble at −5…+5 dB, and against other
people's audio)."""


@dataclass(frozen=True)
class SyncEvidence:
    confidence: float
    """The clip confidence (median − min of the kept windows' mean curve)."""
    second_peak: float
    """Depth of the best dip further than 80 ms from the chosen one, as a share of the chosen
    dip's depth (0: none; near 1: two answers about as good)."""
    windows: int
    """Speaking windows kept in the aggregate."""
    span: float
    """Clip length over the shortest length the search range takes (1 = just long enough)."""

    def features(self) -> dict[str, float]:
        return {"log_confidence": math.log(max(self.confidence, 1e-4)), "second_peak": self.second_peak,
                "log_windows": math.log(max(self.windows, 1))}


def sync_evidence(curve: np.ndarray, shifts_ms: np.ndarray, offset_ms: float | None, confidence: float,
                  weights: np.ndarray, duration_s: float, min_duration_s: float) -> SyncEvidence:
    """The evidence features of one measurement (see :class:`SyncEvidence`)."""
    c = np.asarray(curve, np.float64)
    ok = np.isfinite(c)
    second = 0.0
    if offset_ms is not None and ok.sum() >= 3:
        med = float(np.median(c[ok]))
        i = int(np.argmin(np.abs(shifts_ms - offset_ms)))
        best = med - float(np.nanmin(c[max(0, i - 1):i + 2]))
        far = ok & (np.abs(shifts_ms - shifts_ms[i]) > SECOND_PEAK_EXCLUSION_MS)
        if best > 0 and far.any():
            second = float(np.clip((med - c[far].min()) / best, 0.0, 1.5))
    return SyncEvidence(confidence=float(confidence), second_peak=second, windows=int(np.sum(weights > 0)),
                        span=float(duration_s / max(min_duration_s, 1e-9)))


def p_correct(ev: SyncEvidence) -> float:
    """Probability that the offset is right (±40 ms), from the calibrated logistic model."""
    f = ev.features()
    return _logistic(P_COEF["bias"] + sum(P_COEF[k] * v for k, v in f.items()))


def _logistic(z: float) -> float:
    return float(1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z)))))


SEGMENT_COEF = {"bias": -1.2773, "logit_posterior": 0.9518, "log_seconds": 1.3206}
"""Logistic model of "the face really speaks in this segment" (at least half of its frames) from
the segment's mean speaking posterior and its length, fitted by
``benchmarks/fit_segment_calibration.py`` on the tuning group's composites, clean and with babble
at 10, 5 and 0 dB, and checked on the final group's. The posterior alone runs high, most of all
for short segments: a 0.4 s segment at a mean posterior of 0.95 is right about six times in ten."""


def segment_probability(mean_posterior: float, seconds: float) -> float:
    """Probability that a speaking segment is right, from its face's mean speaking posterior over
    the segment and its length (s); NaN when the posterior is."""
    if not math.isfinite(mean_posterior):
        return float("nan")
    q = min(max(float(mean_posterior), 1e-4), 1 - 1e-4)
    return _logistic(SEGMENT_COEF["bias"] + SEGMENT_COEF["logit_posterior"] * math.log(q / (1 - q))
                     + SEGMENT_COEF["log_seconds"] * math.log(max(float(seconds), 0.04)))


def unreliable_reasons(ev: SyncEvidence, p: float) -> list[str]:
    """Why a result falls short of :data:`RELIABLE_P`, in words a user can act on."""
    if p >= RELIABLE_P:
        return []
    why = []
    if ev.second_peak >= 0.8:
        why.append(f"a second offset fits almost as well ({ev.second_peak:.0%} of the best dip's depth)")
    if ev.windows < 40:
        why.append(f"few speaking windows ({ev.windows}, {ev.windows * 0.04:.1f} s of clear speech)")
    if ev.span < 2.0:
        why.append("the clip is short for the search range (pass a smaller search_ms, or measure a longer clip)")
    if ev.confidence < 0.2:
        why.append(f"weak lip-sync evidence (confidence {ev.confidence:.3f})")
    return why or [f"the evidence gives a {p:.0%} chance of being right"]
