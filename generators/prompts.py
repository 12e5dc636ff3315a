"""Verse-Bench text → the prompt format a model was trained on (used by ``ModelGenerator.format_prompt``)."""
from __future__ import annotations

import re


def speech_tagged(prompt: str, speech: str, open_tag: str, close_tag: str) -> str:
    """Wrap the spoken line in the model's speech tags. Verse-Bench prompts quote the line; the quoted copy is
    replaced in place when found, otherwise the tagged line is appended."""
    speech = re.sub(r"^\s*Speaker\s*\d+\s*:\s*", "", speech).strip()  # a speaker label, not words to say
    if not speech:
        return prompt
    tagged = f"{open_tag}{speech}{close_tag}"
    for q in ('"{}"', "“{}”", "'{}'", "「{}」"):
        quoted = q.format(speech)
        if quoted in prompt:
            return prompt.replace(quoted, tagged, 1)
    for m in re.finditer(r"[\"“「]([^\"”」]{3,})[\"”」]", prompt):
        if _similar(m.group(1), speech):
            return prompt[: m.start()] + tagged + prompt[m.end():]
    return f"{prompt.rstrip()} {tagged}"


def _similar(a: str, b: str) -> bool:
    """Same line up to punctuation, quote style and small edits (Verse-Bench's quoted copy and speech text differ
    this way in 23 items)."""
    import difflib

    def norm(x: str) -> str:
        return re.sub(r"[\W_]+", "", x.lower())

    return difflib.SequenceMatcher(None, norm(a), norm(b)).ratio() > 0.8
