"""The turn model that turns per-face scores into speaking probabilities (speakerid.decoding)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from speakerid.decoding import speaking_posteriors


def _brute_force(frames, scores, n, fps, *, scale, bias, switch_per_s):
    """Posteriors by summing over every state sequence, with the transition rule written out
    state by state: the reference the forward–backward must match."""
    p = -math.expm1(-switch_per_s / fps)
    present = [{k for k, f in enumerate(frames) if t in set(f.tolist())} for t in range(n)]
    z = {(k, int(t)): s for k, (f, sc) in enumerate(zip(frames, scores)) for t, s in zip(f, sc)}

    def states(t):
        return [-1] + sorted(present[t])  # -1 = nobody

    def emit(t, s):
        if s < 0:
            return 1.0
        v = z[(s, t)]
        return math.exp(scale * ((0.0 if np.isnan(v) else v) - bias))

    def trans(t, a, b):  # from state a at t-1 to b at t
        now = states(t)
        m = len(now)
        if a not in now:  # a face that left: any state alike
            return 1.0 / m
        if m == 1:
            return 1.0
        return 1 - p if a == b else p / (m - 1)

    post = [np.zeros(len(f)) for f in frames]
    total = 0.0
    for seq in itertools.product(*[states(t) for t in range(n)]):
        w = 1.0 / len(states(0)) * emit(0, seq[0])
        for t in range(1, n):
            w *= trans(t, seq[t - 1], seq[t]) * emit(t, seq[t])
        total += w
        for t, s in enumerate(seq):
            if s >= 0:
                post[s][list(frames[s]).index(t)] += w
    return [x / total for x in post]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exclusive_posteriors_match_the_sum_over_all_state_sequences(seed):
    rng = np.random.default_rng(seed)
    n = 7
    # faces entering and leaving, one with a gap in its scores, a frame with nobody on screen
    frames = [np.arange(0, 5), np.arange(2, 7), np.arange(1, 3), np.arange(6, 7)]
    scores = [rng.normal(1.0, 2.0, f.size) for f in frames]
    scores[1][2] = np.nan
    kw = dict(scale=0.7, bias=1.0, switch_per_s=3.0)
    got = speaking_posteriors(frames, scores, n, 25.0, **kw)
    want = _brute_force(frames, scores, n, 25.0, **kw)
    for g, w, s in zip(got, want, scores, strict=True):
        fin = np.isfinite(s)
        np.testing.assert_allclose(g[fin], w[fin], rtol=1e-5, atol=1e-7)
        assert np.isnan(g[~fin]).all()  # unscorable frames stay unscored


def test_a_run_of_evidence_makes_a_turn_and_nobody_speaks_without_it():
    n = 200
    f = np.arange(n)
    a = np.full(n, -1.0)
    b = np.full(n, -1.0)
    a[20:80] = 4.0
    b[120:170] = 4.0
    a[50] = -3.0  # one bad window inside a's turn does not break it
    pa, pb = speaking_posteriors([f, f], [a, b], n, 25.0)
    assert (pa[25:75] > 0.9).all() and (pb[125:165] > 0.9).all()
    assert (pa[100:115] < 0.1).all() and (pb[100:115] < 0.1).all()  # a pause: nobody
    assert (pa + pb <= 1 + 1e-6).all()  # one voice at a time
    # the turn's edges follow the evidence, within a few frames
    on = np.flatnonzero(pa >= 0.5)
    assert abs(on[0] - 20) <= 3 and abs(on[-1] - 79) <= 3


def test_overlapping_speech_when_not_exclusive():
    n = 100
    f = np.arange(n)
    s = np.full(n, 4.0)
    pa, pb = speaking_posteriors([f, f], [s, s], n, 25.0, exclusive=False)
    assert (pa > 0.9).all() and (pb > 0.9).all()
    qa, qb = speaking_posteriors([f, f], [s, s], n, 25.0, exclusive=True)
    np.testing.assert_allclose(qa, qb, atol=1e-6)  # two equal faces share one voice
    assert (qa < 0.55).all()


def test_bad_arguments_are_named():
    f = np.arange(3)
    with pytest.raises(ValueError, match="fps"):
        speaking_posteriors([f], [np.zeros(3)], 3, 0.0)
    with pytest.raises(ValueError, match="same length"):
        speaking_posteriors([f], [np.zeros(2)], 3, 25.0)
    assert speaking_posteriors([], [], 10, 25.0) == []
