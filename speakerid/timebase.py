"""The model's clocks and input shape: the one definition, shared by every stage.

The model's timeline is 25 fps video and 100 Hz MFCC of 16 kHz audio, so one video frame spans
exactly four MFCC columns, and a 0.2 s window is 5 frames or 20 columns. Media decodes to it,
features and the network are shaped by it, and results are mapped back from it to the source's
own frames and seconds.
"""
from __future__ import annotations

SAMPLE_RATE = 16_000
"""Audio sample rate of the model's input (Hz)."""
MFCC_RATE = 100
"""MFCC columns per second (10 ms hop)."""
VIDEO_FPS = 25
"""Frame rate of the model's video timeline."""
COLS_PER_FRAME = MFCC_RATE // VIDEO_FPS  # 4
WINDOW_FRAMES = 5
"""Video frames per model window (0.2 s)."""
WINDOW_COLS = WINDOW_FRAMES * COLS_PER_FRAME  # 20
MS_PER_COL = 1000 // MFCC_RATE  # 10
CROP_SIZE = 111
"""Side (pixels) of the grayscale mouth crops the video stream takes."""
