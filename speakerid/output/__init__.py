"""Output: files and pictures made from results: JSON, CSV and RTTM (:mod:`.export`), plots
(:mod:`.plots`), annotated video (:mod:`.render`)."""
