"""The toy world's config readers: hop weights and the seeded train/dev split."""
from solopo.data.toy_world import hop_weights, train_dev_records

TINY = {"hop_weights": {"2": 0.5, 3: 0.3, "4": 0.2}, "entities": {"person": 30, "city": 12, "country": 6,
                                                                   "leader": 6, "spouse": 6}}


def test_hop_weights_read_string_and_integer_keys():
    assert hop_weights(TINY) == {2: 0.5, 3: 0.3, 4: 0.2}
    assert all(type(k) is int and type(v) is float for k, v in hop_weights({"hop_weights": {"2": 1}}).items())


def test_train_and_dev_are_seeded_and_disjoint():
    train, dev = train_dev_records(TINY, 5, 4, seed=7)
    assert (len(train), len(dev)) == (5, 4)
    assert train_dev_records(TINY, 5, 4, seed=7) == (train, dev)  # a function of the seed alone
    assert not {r["id"] for r in train} & {r["id"] for r in dev}
    assert [r["question"] for r in train[:4]] != [r["question"] for r in dev]  # the splits draw apart
    other_train, _ = train_dev_records(TINY, 5, 4, seed=8)
    assert [r["question"] for r in other_train] != [r["question"] for r in train]


def test_reference_traces_are_the_gold_trace_and_the_same_trace_ending_wrong():
    import random

    from solopo.data.toy_world import generate_records, reference_traces

    recs = generate_records(5, 1, {2: 1.0, 3: 1.0}, {"person": 30, "city": 10, "country": 8, "leader": 8, "spouse": 8})
    gold, wrong = reference_traces(recs[0], recs, random.Random(0))
    assert gold == recs[0]["cot"] and gold.endswith(f"The answer is: {recs[0]['answer']}")
    head = gold.rpartition("The answer is:")[0]
    assert wrong.startswith(head) and wrong.rpartition("The answer is: ")[2] in {r["answer"] for r in recs[1:]}
    assert wrong.rpartition("The answer is: ")[2] != recs[0]["answer"]
