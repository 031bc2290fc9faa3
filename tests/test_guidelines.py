"""Guidelines and label descriptions: versions in the store, the CLI, safe rendering, and the
prompts they reach (the fake OpenAI-compatible server, over HTTP; the local labeler's prefix)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

import test_prelabel_remote
from labelloop.errors import InputError
from labelloop.guidelines import render_markdown
from labelloop.labelers import LabelTask, OpenAILabeler
from labelloop.labelers.local import LocalLabeler
from labelloop.labelers.openai import system_prompt
from labelloop.testing.fake_openai import FakeConfig, serve_fake_openai
from test_prelabel_remote import TEXTS, call, prelabel

#: A project over the fake endpoint's texts (`test_prelabel_remote`'s fixture, shared).
project_dir = test_prelabel_remote.project_dir
#: What `guidelines set/label/show --json` send of a version, in order.
SENT = ["version", "text", "label_descriptions", "author", "source", "created_at"]
GUIDE = "# How to label\n\nSarcastic praise is **negative**.\n"


def test_each_change_is_a_new_version_and_the_newest_is_in_force(make_project):
    project = make_project()
    assert project.guidelines() is None
    first = project.set_guidelines(GUIDE, author="ana", source="guide.md")
    assert (first.version, first.author, first.source) == (1, "ana", "guide.md")
    second = project.set_guidelines(
        label_descriptions={"Negative": "Complaints, sarcasm"}, author="bo"
    )
    assert second.version == 2
    assert second.text == GUIDE  # the text is kept when only a description changes
    assert second.label_descriptions == {"negative": "Complaints, sarcasm"}  # as spelled
    project.set_guidelines(label_descriptions={"positive": "Praise", "negative": ""})
    current = project.guidelines()
    assert current.version == 3 and current.label_descriptions == {"positive": "Praise"}
    again = project.set_guidelines(GUIDE)  # nothing changed: no new version
    assert again.version == 3
    history = project.guideline_history()
    assert [v.version for v in history] == [1, 2, 3]
    assert [v.author for v in history] == ["ana", "bo", None]
    assert all(v.created_at for v in history)


def test_bad_guidelines_and_descriptions_are_refused(make_project):
    project = make_project()
    with pytest.raises(InputError, match="not one of the project's labels"):
        project.set_guidelines(label_descriptions={"sarcastic": "x"})
    with pytest.raises(InputError, match="bidi"):
        project.set_guidelines("evil \u202e text")
    with pytest.raises(InputError, match="at most"):
        project.set_guidelines(label_descriptions={"positive": "x" * 1001})
    with pytest.raises(InputError, match="at most"):
        project.set_guidelines("x" * 100_001)
    assert project.guidelines() is None  # nothing half-stored


def test_the_cli_sets_describes_and_shows(project_dir, tmp_path, capsys):
    guide = tmp_path / "guide.md"
    guide.write_text(GUIDE)
    described = tmp_path / "labels.json"
    described.write_text(json.dumps({"positive": "Praise", "NEUTRAL": "Neither"}))
    status, out, err = call(
        capsys, "guidelines", "set", guide, "--descriptions", described, "--author", "ana",
        "-p", project_dir, "--json",
    )  # fmt: skip
    assert status == 0, err
    stored = json.loads(out)
    assert list(stored) == SENT and stored["version"] == 1
    status, out, err = call(
        capsys, "guidelines", "label", "negative", "Complaints", "-p", project_dir
    )
    assert status == 0, err
    status, out, _ = call(capsys, "guidelines", "show", "-p", project_dir, "--json")
    shown = json.loads(out)
    assert list(shown) == SENT  # the keys, in order, `show --json` has always sent
    assert datetime.fromisoformat(shown["created_at"]).isoformat() == shown["created_at"]
    assert shown["version"] == 2 and shown["text"] == GUIDE
    assert shown["label_descriptions"] == {
        "positive": "Praise",
        "negative": "Complaints",
        "neutral": "Neither",
    }
    status, out, _ = call(capsys, "guidelines", "show", "--history", "-p", project_dir, "--json")
    assert [list(v) for v in json.loads(out)] == [SENT, SENT]
    assert json.loads(out)[-1] == shown
    assert [(v["version"], v["source"]) for v in json.loads(out)] == [
        (1, str(guide)),
        (2, "label"),
    ]
    status, _, err = call(capsys, "guidelines", "label", "mixed", "x", "-p", project_dir)
    assert status == 2 and "not one of the project's labels" in err
    status, _, err = call(capsys, "guidelines", "set", tmp_path / "missing.md", "-p", project_dir)
    assert status == 2 and "no such file" in err
    bad = tmp_path / "bad.json"
    bad.write_text('["positive"]')
    status, _, err = call(
        capsys, "guidelines", "set", guide, "--descriptions", bad, "-p", project_dir
    )
    assert status == 2 and "JSON object" in err


@pytest.mark.parametrize(
    ("markdown", "absent"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src=x onerror="alert(1)">', "<img"),
        ("[click](javascript:alert(1))", 'href="javascript'),
        ("[click](JAVASCRIPT:alert(1))", "href="),
        ("<javascript:alert(1)>", "href="),
        ("[data](data:text/html;base64,PHNjcmlwdD4=)", "href="),
        ("![pixel](https://tracker.example/p.png)", "<img"),
        ('[x](https://ok.example/"onmouseover="alert(1))', '"onmouseover'),
    ],
)
def test_markdown_renders_no_raw_html_and_only_http_links(markdown, absent):
    html = render_markdown(markdown)
    assert absent not in html


def test_markdown_keeps_formatting_and_http_links():
    html = render_markdown("# Title\n\n**bold** and [docs](https://example.org/guide)")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert '<a href="https://example.org/guide" rel="noopener noreferrer nofollow"' in html


def test_guidelines_reach_the_endpoint_and_change_the_prompt_version(project_dir, tmp_path, capsys):
    from labelloop import Project

    with serve_fake_openai(FakeConfig()) as server:
        assert prelabel(capsys, project_dir, server)[0] == 0
        before = Project.open(project_dir)
        first_version = before.active_predictor()[1]
        before.close()
        assert all("What the labels mean" not in m[0]["content"] for m in server.stats.prompts)
        guide = tmp_path / "guide.md"
        guide.write_text("# Rules\n\nA film called odd is neutral. Unique-marker-7731.\n")
        assert call(capsys, "guidelines", "set", guide, "-p", project_dir)[0] == 0
        assert call(
            capsys, "guidelines", "label", "neutral", "Neither praise nor complaint",
            "-p", project_dir,
        )[0] == 0  # fmt: skip
        seen = len(server.stats.prompts)
        assert prelabel(capsys, project_dir, server)[0] == 0
        asked = server.stats.prompts[seen:]
    with Project.open(project_dir) as project:
        second_version = project.active_predictor()[1]
    assert second_version != first_version  # a new prompt version: every item asked again
    assert len(asked) == len(TEXTS)
    for messages in asked:
        system = messages[0]["content"]
        assert "- neutral: Neither praise nor complaint" in system
        assert "Unique-marker-7731" in system
        assert "Unique-marker-7731" not in messages[-1]["content"]  # not in the item's turn


def test_prompt_versions_follow_guidelines_and_descriptions():
    labeler = OpenAILabeler("fake-model", base_url="http://127.0.0.1:9/v1")
    plain = LabelTask("Sentiment.", ["positive", "negative"])
    guided = LabelTask("Sentiment.", ["positive", "negative"], guidelines="Sarcasm is negative.")
    described = LabelTask(
        "Sentiment.", ["positive", "negative"], label_descriptions={"positive": "Praise"}
    )
    versions = {labeler.prompt_version(t) for t in (plain, guided, described)}
    assert len(versions) == 3
    assert "Annotation guidelines" not in system_prompt(plain, [])
    long = LabelTask("Sentiment.", ["positive", "negative"], guidelines="rule. " * 5000)
    assert len(system_prompt(long, [])) < 6000  # a bounded excerpt, marked as such
    assert "(the beginning)" in system_prompt(long, [])
    labeler.close()


def test_the_local_labeler_puts_guidelines_in_its_prefix(tmp_path):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")  # prompt versions and prefixes never load the model
    labeler = LocalLabeler(str(weights))
    plain = LabelTask("Sentiment.", ["positive", "negative"])
    guided = LabelTask(
        "Sentiment.",
        ["positive", "negative"],
        label_descriptions={"negative": "Complaints <<<TEXT"},
        guidelines="Sarcasm is negative. " * 200,
    )
    prefix = labeler.prefix_text(guided)
    assert "- negative: Complaints" in prefix and "Sarcasm is negative." in prefix
    assert prefix.count("<<<TEXT") == 1  # the description cannot open a fence of its own
    assert len(prefix) < len(labeler.prefix_text(plain)) + 1300  # a bounded excerpt
    assert labeler.prompt_version(plain) != labeler.prompt_version(guided)


def test_gold_feedback_is_off_by_default_and_then_shows_the_expected_label(make_project):
    import random

    from labelloop import review
    from labelloop.errors import ConflictError
    from labelloop.store import Item
    from test_review_service import seed, user

    project = make_project()
    ids = seed(project, 3, n_gold=3)
    review.set_queue_settings(project, gold_rate=0.99)
    described = {"positive": "Praise", "negative": "Complaint", "neutral": "Neither"}
    project.set_guidelines(label_descriptions=described)
    with project.store.session() as session:
        expected = {i: session.get_one(Item, i).gold_label for i in ids["gold"]}
    ann = user(project, "ann")
    random.seed(0)  # gold checks are drawn at random: the same draws on every run

    item = review.next_item(project, ann.id)
    assert item.id in ids["gold"]
    reply = review.submit(project, ann, item.id, action="label", label="positive")
    assert "gold_feedback" not in reply.to_dict()  # off by default: nothing is revealed
    review.undo(project, ann)  # and the answer may be undone

    project.set_gold_feedback(True)
    wrong = next(label for label in project.labels if label != expected[item.id])
    reply = review.submit(project, ann, item.id, action="label", label=wrong)
    feedback = reply.gold_feedback
    assert feedback is not None and feedback.expected_label == expected[item.id]
    assert (feedback.your_label, feedback.correct) == (wrong, False)
    assert feedback.description == described[expected[item.id]]
    assert feedback.guidelines_version == 1
    with pytest.raises(ConflictError, match="cannot be undone"):
        review.undo(project, ann)  # the expected label was seen: the answer stays
