"""Moved to :mod:`speakerid.output.render`; this name keeps older imports working."""
from .output.render import COPY_AUDIO_CODECS, annotate_frame, render_speakers  # noqa: F401
