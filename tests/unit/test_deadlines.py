import random

from streams.deadlines import DeadlineIndex


def test_pop_due_returns_records_in_due_order_and_respects_updates() -> None:
    index = DeadlineIndex()
    index.update("a", 30)
    index.update("b", 10)
    index.update("c", 20)
    index.update("b", 40)  # moved later
    index.update("c", None)  # removed
    assert index.peek() == 30 and len(index) == 2 and "c" not in index
    assert index.pop_due(35) == ["a"]
    assert index.pop_due(100) == ["b"]
    assert index.peek() is None and len(index) == 0


def test_matches_a_plain_dict_under_random_updates() -> None:
    rng = random.Random(3)
    index, model = DeadlineIndex(), {}
    now = 0
    for _ in range(20_000):
        record = f"r{rng.randrange(300)}"
        if rng.random() < 0.1:
            index.update(record, None)
            model.pop(record, None)
        else:
            due = now + rng.randrange(1, 1000)
            index.update(record, due)
            model[record] = due
        assert len(index._heap) <= max(64, 2 * len(index))  # stale entries are compacted away
        if rng.random() < 0.05:
            now += rng.randrange(200)
            expected = sorted((d, r) for r, d in model.items() if d <= now)
            got = index.pop_due(now)
            assert sorted(got) == sorted(r for _, r in expected)
            assert [model[r] for r in got] == sorted(model[r] for r in got)
            for r in got:
                del model[r]
        assert index.peek() == (min(model.values()) if model else None)
