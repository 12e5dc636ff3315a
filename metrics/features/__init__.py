"""Feature extractors shared by several metrics (e.g. one Whisper model for WER and cpWER)."""
