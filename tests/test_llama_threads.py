"""How many threads the embedded model runs on: measured, bounded by the cores it may use,
fixed on request; and the model files' digests, remembered instead of recomputed per run."""

from __future__ import annotations

import os

import pytest

from labelloop.labelers.llama_scorer import (
    THREADS_ENV,
    ThreadTuner,
    available_cores,
    threads_override,
)
from labelloop.labelers.reencode import file_digest


def run(tuner: ThreadTuner, seconds_per_token: dict[int, float], decodes: int) -> list[int]:
    """The thread counts chosen for `decodes` decodes of 100 tokens at the given speeds."""
    chosen = []
    for _ in range(decodes):
        threads = tuner.choose()
        chosen.append(threads)
        tuner.record(threads, 100 * seconds_per_token[threads], 100)
    return chosen


def test_candidates_halve_down_to_one_thread() -> None:
    assert ThreadTuner(8).candidates == [1, 2, 4, 8]
    assert ThreadTuner(6).candidates == [1, 3, 6]
    assert ThreadTuner(1).candidates == [1]


def test_every_count_is_tried_then_the_fastest_kept() -> None:
    tuner = ThreadTuner(2)
    chosen = run(tuner, {2: 0.001, 1: 0.0018}, 40)
    assert chosen[:2] == [1, 2]  # both measured on real work first, one thread first
    assert tuner.best == 2
    # Checking the slower count again costs little once the choice holds.
    assert chosen[2:].count(1) <= 4


def test_a_busy_core_moves_the_choice_to_fewer_threads_and_back() -> None:
    tuner = ThreadTuner(2)
    run(tuner, {2: 0.001, 1: 0.0018}, 20)
    assert tuner.best == 2
    contended = run(tuner, {2: 0.006, 1: 0.002}, 80)  # another process took one core
    assert tuner.best == 1
    assert contended[-20:].count(1) >= 15
    run(tuner, {2: 0.001, 1: 0.0018}, 200)  # it left
    assert tuner.best == 2


def test_short_decodes_are_not_rated() -> None:
    tuner = ThreadTuner(2, min_tokens=64)
    tuner.record(2, 5.0, 3)  # the prompt prefix or a handful of tokens: fixed costs dominate
    assert tuner.rate == {}
    tuner.record(2, 0.1, 100)
    assert tuner.rate == {2: pytest.approx(0.001)}


def test_the_cores_available_follow_the_affinity_mask() -> None:
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert available_cores() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert available_cores() == len(allowed)


def test_the_thread_count_can_be_fixed_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert threads_override() is None
    monkeypatch.setenv(THREADS_ENV, "3")
    assert threads_override() == 3
    for bad in ("two", "0", "100000"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ValueError, match=THREADS_ENV):
            threads_override()


def test_a_files_digest_is_remembered_until_it_changes(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LABELLOOP_MODEL_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"weights v1")
    first = file_digest(model)
    assert first == file_digest(model, salt=b"") and first != file_digest(model, salt=b"x")
    stat = model.stat()
    model.write_bytes(b"weights v2")  # same size; the old time put back: taken as unchanged
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_digest(model) == first  # read from the cache, not from the file
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_digest(model) != first  # a new version of the file is hashed again


def test_prelabel_threads_option_fixes_the_count_for_the_run(tmp_path, monkeypatch, cli) -> None:
    project = tmp_path / "p"
    assert cli("init", project, "--task", "Sentiment.", "--labels", "positive,negative") == 0
    assert cli("prelabel", "--threads", "0", "--project", project) == 2  # bad input
    monkeypatch.setenv(THREADS_ENV, "2")  # restored afterwards
    assert cli("prelabel", "--threads", "3", "--project", project) == 0  # nothing to label
    assert threads_override() == 3
