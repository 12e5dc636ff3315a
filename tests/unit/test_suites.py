import json

import pytest

from mova_eval.errors import SuiteError
from mova_eval.suites import detect_language, load_smoke, load_suite, load_verse, summarize


def test_verse_bench_file_loads_with_published_counts(verse_prompts):
    suite = load_verse(str(verse_prompts))
    s = summarize(suite)
    assert s["items"] == 600
    assert {c: v["items"] for c, v in s["categories"].items()} == {"set1": 205, "set2": 295, "set3": 100}
    assert s["with_speech"] == 243
    assert sum(v["en"] for v in s["categories"].values()) == 121
    assert sum(v["zh"] for v in s["categories"].values()) == 122
    assert all(it.has_speech for it in suite.items if it.category == "set3")
    first = suite.items[0]
    assert first.id == "00000000" and first.category == "set1"
    assert first.speech_text == "Attention Is All You Need." and first.speaker == "the woman"
    assert first.audio_prompts == ("The sound of chalk writing.",)


def test_verse_set_filter_and_limit(verse_prompts):
    s3 = load_suite({"loader": "verse", "name": "verse_set3", "path": str(verse_prompts), "sets": ["set3"]})
    assert len(s3) == 100 and {it.category for it in s3.items} == {"set3"}
    few = load_suite({"loader": "verse", "name": "verse", "path": str(verse_prompts), "limit": 7})
    assert len(few) == 7


def _write(tmp_path, data):
    p = tmp_path / "suite.json"
    p.write_text(json.dumps(data, ensure_ascii=False))
    return p


@pytest.mark.parametrize(
    "item, field",
    [
        ({"audio_prompt": []}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "  "}, "prompt"),
        ({"prompt": "x", "audio_prompt": [1]}, "audio_prompt"),
        ({"prompt": "x", "speech_prompt": "hello"}, "speech_prompt"),
        ({"prompt": "x", "speech_prompt": {"text": 5}}, "speech_prompt.text"),
    ],
)
def test_malformed_item_names_item_and_field(tmp_path, item, field):
    p = _write(tmp_path, {"set1": {"good": {"prompt": "fine"}, "bad_item": item}})
    with pytest.raises(SuiteError) as e:
        load_verse(str(p))
    assert e.value.item == "bad_item" and e.value.field == field
    assert "bad_item" in str(e.value) and field in str(e.value) and str(p) in str(e.value)


def test_malformed_file_level_errors(tmp_path):
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"set1": {')
    with pytest.raises(SuiteError, match="not valid JSON"):
        load_verse(str(bad_json))
    with pytest.raises(SuiteError, match="does not exist"):
        load_verse(str(tmp_path / "nope.json"))
    with pytest.raises(SuiteError, match="non-empty object"):
        load_verse(str(_write(tmp_path, [])))
    with pytest.raises(SuiteError, match="repeats"):
        load_verse(str(_write(tmp_path, {"a": {"x": {"prompt": "p"}}, "b": {"x": {"prompt": "q"}}})))
    with pytest.raises(SuiteError, match="no set"):
        load_verse(str(_write(tmp_path, {"a": {"x": {"prompt": "p"}}})), sets=["set9"])


def test_folder_layout_picks_up_first_frames_and_reference_audio(tmp_path):
    (tmp_path / "set2").mkdir()
    (tmp_path / "set2" / "a1.json").write_text(json.dumps({"prompt": "rain", "speech_prompt": {"speaker": "", "text": ""}}))
    (tmp_path / "set2" / "a1.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "set2" / "a1.wav").write_bytes(b"RIFF")
    suite = load_verse(str(tmp_path))
    (item,) = suite.items
    assert item.first_frame.endswith("set2/a1.jpg") and item.reference_audio.endswith("set2/a1.wav")
    assert item.language == "none" and not item.has_speech


def test_offline_without_path_explains_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SuiteError, match="suite.path"):
        load_verse(None)


def test_smoke_suite_covers_the_promised_kinds():
    suite = load_smoke()
    assert 8 <= len(suite) <= 12
    cats = {it.category for it in suite.items}
    assert {"speech_en", "speech_zh", "dialogue", "sfx", "music", "ambience"} <= cats
    langs = {it.language for it in suite.items if it.has_speech}
    assert langs == {"en", "zh"}
    dialogue = [it for it in suite.items if it.category == "dialogue"][0]
    assert dialogue.num_speakers == 2


def test_language_detection():
    assert detect_language("你好") == "zh"
    assert detect_language("Hello there") == "en"
    assert detect_language("") == "none"
    assert detect_language("Say “你好” now") == "zh"
