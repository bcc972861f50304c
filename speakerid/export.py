"""Moved to :mod:`speakerid.output.export`; this name keeps older imports working."""
from .output.export import (  # noqa: F401
    CSV_FIELDS, read_csv, read_json, read_rttm, rttm_lines, speaker_name, write_csv, write_json, write_rttm,
)
