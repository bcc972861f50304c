"""How loud the background is, and over how long a stretch the speaking scores are averaged.

In noise each window's lip-sync evidence is weaker, while a speaking turn still lasts seconds:
averaging the scores over a longer stretch restores the evidence. The null (the same average at
shifts far from the face's offset) is averaged alike and stays standardised, so, unlike a lower
decision bias, this does not hand a voice to silent faces. Longer averaging blurs where turns
change, so audio that is not noisy keeps the decoder's default width.

Noise is read from the audio alone, as the spread of its 10 ms frame energies (90th less 10th
percentile, dB): quiet pauses are far below speech in clean audio, and a loud background fills
them. It is not read from the sync evidence, which an off-screen voice lowers as noise does.
On the validation composites the spread is 24–40 dB clean, 20–25 dB under babble 20 dB below
the speech, about 14 at 10 dB, 10 at 5 dB and 7.5 at 0 dB. The widths and the two spreads were
chosen on the tuning group and checked on the final group (docs/experiments.md, "Smoothing that
grows with the noise").
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..media import BlockPower
from ..timebase import SAMPLE_RATE, VIDEO_FPS

FRAME_SAMPLES = SAMPLE_RATE // 100
"""10 ms frames."""
CLEAN_SPREAD_DB = 18.0
"""From this energy spread up, the audio counts as clean: the default width."""
NOISY_SPREAD_DB = 10.0
"""From this spread down (babble about 5 dB below the speech), the widest averaging."""
NOISY_SMOOTH_FRAMES = 75
"""The widest averaging (25 fps frames): 3 s."""
WARN_SPREAD_DB = 14.0
"""Below this spread (babble about 10 dB below the speech, or worse) the result warns that its
labels are less certain: on the final group's composites AP falls from 0.967 clean to 0.940 at
10 dB, 0.916 at 5 and 0.832 at 0 dB, and more of an off-screen voice goes unreported."""
_MIN_FRAMES = 50  # under 0.5 s of audio says nothing about its background


class FrameEnergyTap(BlockPower):
    """Passes audio pieces through unchanged, keeping each 10 ms frame's energy in dB (frames
    counted from sample 0, so any cut into pieces gives the same frames)."""

    def __init__(self, pieces: Iterable[np.ndarray]):
        super().__init__(pieces, FRAME_SAMPLES, dtype=np.float64)

    @property
    def energies_db(self) -> np.ndarray:
        return (10.0 * np.log10(self.powers + 1e-10)).astype(np.float32)


def energy_spread_db(energies_db: np.ndarray) -> float:
    """90th less 10th percentile of the frame energies (dB); inf for under 0.5 s of audio."""
    e = np.asarray(energies_db, np.float64)
    if e.size < _MIN_FRAMES:
        return float("inf")
    return float(np.percentile(e, 90) - np.percentile(e, 10))


def noise_warning(spread_db: float, smooth_frames: int) -> list[str]:
    """The warning a result carries when its audio's background is loud (none otherwise)."""
    if not np.isfinite(spread_db) or spread_db >= WARN_SPREAD_DB:
        return []
    return [f"the audio has a loud background (its quiet moments are only {spread_db:.0f} dB below its loud ones): "
            f"lip-sync evidence is weaker in noise, so who speaks when is less certain; scores were averaged over "
            f"{smooth_frames} frames ({smooth_frames / VIDEO_FPS:.1f} s), and speech may go to nobody or an off-screen "
            f"voice go unreported"]


def smooth_frames_for(spread_db: float, default: int, *, clean_db: float = CLEAN_SPREAD_DB,
                      noisy_db: float = NOISY_SPREAD_DB, widest: int = NOISY_SMOOTH_FRAMES) -> int:
    """The averaging width for audio of this energy spread: ``default`` from ``clean_db`` up,
    growing linearly to ``widest`` as the spread falls to ``noisy_db``."""
    if not np.isfinite(spread_db) or default >= widest:
        return int(default)
    t = min(1.0, max(0.0, (clean_db - spread_db) / (clean_db - noisy_db)))
    return int(round(default + t * (widest - default)))
