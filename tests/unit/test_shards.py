"""suite.shard=I/N: a deterministic, order-independent partition of the suite, balanced within each set."""

import pytest

from mova_eval.config import compose
from mova_eval.errors import ConfigError
from mova_eval.runner import config_hash
from mova_eval.spec import SuiteItem
from mova_eval.suites import load_suite, parse_shard, shard_items, shard_of


def _items(n_per_cat: dict[str, int]) -> tuple[SuiteItem, ...]:
    return tuple(SuiteItem(id=f"{c}_{i:03d}", category=c, prompt="p") for c, n in n_per_cat.items() for i in range(n))


def test_every_item_is_in_exactly_one_shard_and_sets_are_balanced():
    items = _items({"set1": 205, "set2": 295, "set3": 100})
    for count in (1, 2, 3, 7):
        shards = [shard_items(items, i, count) for i in range(count)]
        ids = [it.id for s in shards for it in s]
        assert sorted(ids) == sorted(it.id for it in items)  # all, none twice
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1
        for cat in ("set1", "set2", "set3"):
            per = [sum(it.category == cat for it in s) for s in shards]
            assert max(per) - min(per) <= 1, (count, cat, per)


def test_assignment_depends_on_ids_not_on_order():
    items = _items({"a": 13, "b": 8})
    shuffled = tuple(sorted(items, key=lambda it: hash(it.id) % 97)[::-1])
    assert [it.id for it in shuffled] != [it.id for it in items]
    assert shard_of(items, 3) == shard_of(shuffled, 3)
    # a shard keeps the suite's own order
    assert [it.id for it in shard_items(items, 1, 3)] == [it.id for it in items if shard_of(items, 3)[it.id] == 1]
    # by hash, not position: the first items of a set are not simply dealt 0, 1, 2, …
    assert [shard_of(items, 2)[f"a_{i:03d}"] for i in range(13)] != [i % 2 for i in range(13)]


def test_shard_from_config_and_in_the_config_hash():
    whole = load_suite(compose([])["suite"])
    a = load_suite(compose(["suite.shard=0/2"])["suite"])
    b = load_suite(compose(["suite.shard=1/2"])["suite"])
    assert len(a) + len(b) == len(whole) and not {it.id for it in a.items} & {it.id for it in b.items}
    assert abs(len(a) - len(b)) <= 1 and len(a) > 0 and len(b) > 0
    assert load_suite(compose(["suite.shard=0/1"])["suite"]).items == whole.items
    hashes = {config_hash(compose(o)) for o in ([], ["suite.shard=0/2"], ["suite.shard=1/2"])}
    assert len(hashes) == 3
    # limit first, then shard: the shards of a limited suite cover that limited suite
    lim = [load_suite(compose(["suite.limit=4", f"suite.shard={i}/2"])["suite"]) for i in range(2)]
    assert sorted(it.id for s in lim for it in s.items) == sorted(it.id for it in whole.items[:4])


@pytest.mark.parametrize("bad", ["3/2", "2/2", "a/b", "-1/2", "1", "0/0", "1/2/3"])
def test_bad_shard_values_are_config_errors_naming_the_key(bad):
    with pytest.raises(ConfigError, match="suite.shard"):
        load_suite(compose([f"suite.shard={bad}"])["suite"])


def test_parse_shard():
    assert parse_shard(None) is None and parse_shard("") is None
    assert parse_shard("0/2") == (0, 2) and parse_shard(" 4 / 5 ") == (4, 5)
    with pytest.raises(ConfigError, match="suite.shard"):
        parse_shard("5/5")
