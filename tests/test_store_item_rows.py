"""Item row sets: what batch work (prelabel, the Ray engine, scoring) counts, pages and cuts."""

from __future__ import annotations

from labelloop.labelers.base import LabelResult
from labelloop.store import items as stored_items
from labelloop.store.predictions import pending_answers


def _project(make_project, n: int):
    project = make_project()
    project.add_items([{"id": f"t{i}", "text": f"text number {i}"} for i in range(n)], id_col="id")
    return project


def _ids(project) -> list[int]:
    return sorted(stored_items.uids_of(project.store, project.id))


def test_pages_read_every_row_once_in_id_order(make_project) -> None:
    project = _project(make_project, 23)
    rows = stored_items.item_texts(project.id)
    seen, last = [], None
    while page := stored_items.read_page(project.store, rows, last, 5):
        seen.extend(r.id for r in page)
        last = page[-1].id
    assert seen == _ids(project)
    assert stored_items.count_rows(project.store, rows, rows) == 46


def test_a_set_restricted_to_ids_is_split_into_bounded_pieces(make_project) -> None:
    project = _project(make_project, 23)
    wanted = _ids(project)[3:20]
    pieces = stored_items.item_texts(project.id).only(list(reversed(wanted)), page=5)
    assert len(pieces) == 4  # 17 ids, at most 5 a piece
    read = [r.id for piece in pieces for r in stored_items.read_rows(project.store, piece)]
    assert read == wanted


def test_fixed_first_keeps_its_rows_while_answers_are_written(make_project) -> None:
    """A run with --limit on Ray fixes its pool when it starts: items answered meanwhile leave
    the pending set, and no item past the first `n` enters it."""
    project = _project(make_project, 12)
    _, pool = pending_answers(project.id, "m", "v")
    first = stored_items.fixed_first(project.store, pool, 5)
    ids = _ids(project)
    assert [r.id for r in stored_items.read_rows(project.store, first)] == ids[:5]
    answer = LabelResult("positive", {"positive": 0.9, "negative": 0.05, "neutral": 0.05}, 0.9)
    project.save_predictions("m", "v", [(ids[0], answer), (ids[1], answer)])
    assert [r.id for r in stored_items.read_rows(project.store, first)] == ids[2:5]
    assert (
        stored_items.read_rows(project.store, stored_items.fixed_first(project.store, pool, 0))
        == []
    )
    assert stored_items.count_rows(project.store, pool.first(4)) == 4


def test_text_chars_counts_texts_as_a_labeler_is_sent_them(make_project) -> None:
    project = _project(make_project, 4)  # "text number 0" .. "text number 3": 13 characters
    rows = stored_items.item_texts(project.id)
    assert stored_items.text_chars(project.store, [rows], None) == (4, 52)
    assert stored_items.text_chars(project.store, [rows, rows.first(1)], 10) == (5, 50)
    assert len(stored_items.some_texts(project.store, [rows], 3)) == 3
