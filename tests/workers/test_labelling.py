"""Labelling jobs run by the worker code against a teacher on 127.0.0.1, on the real registry
(PostgreSQL, S3): rejection sampling by the adapter's pinned checks, the teacher down, the
budget, skipped answered prompts, a missing key, and the reaper."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest

from registry.db import run_unit_of_work, utcnow
from registry.models import LabellingJob
from registry.tasks import LABEL
from tests.conftest import World
from tests.workers.labelling_world import LabelWorld, chat
from tests.workers.teacher_server import Reply, Seen, silent_socket, teacher_server
from tests.workers.teacher_server import chat as answer
from workers.labelling import run_labelling
from workers.reaper import reap

# Suite-wide rule (every row carries it): never apologise. Row rule: the capital is Paris.
SUITE = [
    {
        "messages": chat("capital of France?")["messages"],
        "checks": [
            {"type": "not_contains", "value": "sorry"},
            {"type": "contains", "value": "Paris"},
        ],
    },
    {"messages": chat("2+2?")["messages"], "checks": [{"type": "not_contains", "value": "sorry"}]},
]
ANSWERS = {
    "capital of France?": "Lyon",  # fails the row's own check
    "2+2?": "4",
    "say hi": "hi there",
    "be rude": "sorry, no",  # fails the suite-wide rule
    "nothing": "   ",  # empty
    "too long": 400,  # the teacher refuses this prompt
}


def scripted(seen: Seen) -> Reply:
    text = ANSWERS[seen.body["messages"][-1]["content"]]
    return Reply(400, {"error": "too long"}) if isinstance(text, int) else answer(text)


@pytest.fixture
def lw(world: World, tmp_path: Path) -> LabelWorld:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    return LabelWorld(world, tmp_path / "tiny-base", secrets)


def test_answers_kept_only_when_they_pass_the_applicable_checks(lw: LabelWorld) -> None:
    lw.upload_suite("house", SUITE)
    prompts = [chat(p) for p in ANSWERS]
    lw.add_samples(prompts + [chat("say hi")])  # a duplicate, sent once
    lw.add_samples([chat("too old")], age=dt.timedelta(days=30))  # outside the window
    with teacher_server(scripted) as teacher:
        lw.add_teacher(teacher.url)
        job = lw.create_job(window="7d")
        assert lw.world.stack.tasks.sent == [(LABEL, [job["id"]], 0)]
        run_labelling(lw.ctx, job["id"], host="w1")
    assert {s.authorization for s in teacher.seen} == {"Bearer sk-tutor"}
    assert sorted(s.body["messages"][-1]["content"] for s in teacher.seen) == sorted(ANSWERS)
    done = lw.job(job["id"])
    assert done["status"] == "succeeded", done["error"]
    p = done["progress"]
    assert (p["total"], p["sent"], p["kept"], p["refused"], p["failed"]) == (6, 5, 2, 3, 1)
    assert p["refused_by"] == {"contains": 1, "not_contains": 1, "empty": 1}
    assert p["budget_exhausted"] is False and done["counts"]["kept"] == 2
    rows = lw.rows(done["dataset_id"])
    kept = {r["messages"][0]["content"]: r["messages"][-1]["content"] for r in rows}
    assert kept == {"2+2?": "4", "say hi": "hi there"}
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    (dataset,) = [d for d in lw.datasets() if d["id"] == done["dataset_id"]]
    origin = dataset["origin"]
    assert origin["kind"] == "teacher" and origin["teacher"] == "tutor"
    assert origin["model"] == "big" and origin["labelling_job_id"] == job["id"]
    assert (origin["sent"], origin["kept"], origin["refused"]) == (5, 2, 3)
    assert dataset["name"] == "taught"
    run_labelling(lw.ctx, job["id"], host="w2")  # a second delivery: not claimed, no change
    assert lw.job(job["id"])["finished_at"] == done["finished_at"]


def test_a_teacher_that_never_answers_fails_the_job_and_stores_nothing(lw: LabelWorld) -> None:
    lw.add_samples([chat("a"), chat("b")])
    before = (lw.datasets(), lw.dataset_objects())
    with silent_socket() as url:
        lw.add_teacher(url, timeout_seconds=0.5, max_retries=1)
        job = lw.create_job()
        run_labelling(lw.ctx, job["id"], host="w1")
    done = lw.job(job["id"])
    assert done["status"] == "failed"
    assert "teacher 'tutor' did not answer: timed out after 0.5 s (2 tries)" in done["error"]
    assert done["dataset_id"] is None and (lw.datasets(), lw.dataset_objects()) == before


def test_the_budget_stops_sending_and_keeps_what_passed(lw: LabelWorld) -> None:
    lw.add_samples([chat(f"q{i}") for i in range(5)])
    calls = iter([Reply(500), answer("one"), answer("two"), answer("three")])
    with teacher_server(lambda s: next(calls)) as teacher:
        lw.add_teacher(teacher.url, max_requests=3)
        job = lw.create_job()
        run_labelling(lw.ctx, job["id"], host="w1")
    done = lw.job(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["budget_exhausted"] is True
    assert (done["progress"]["calls"], done["progress"]["kept"]) == (3, 2)
    assert len(teacher.seen) == 3 and len(lw.rows(done["dataset_id"])) == 2


def test_no_answer_passing_fails_the_job(lw: LabelWorld) -> None:
    lw.upload_suite("house", SUITE)
    lw.add_samples([chat("be rude"), chat("nothing")])
    before = (lw.datasets(), lw.dataset_objects())
    with teacher_server(scripted) as teacher:
        lw.add_teacher(teacher.url)
        job = lw.create_job()
        run_labelling(lw.ctx, job["id"], host="w1")
    done = lw.job(job["id"])
    assert done["status"] == "failed" and "no answer passed the checks" in done["error"]
    assert done["dataset_id"] is None and (lw.datasets(), lw.dataset_objects()) == before


def test_answered_prompts_are_skipped_unless_asked(lw: LabelWorld) -> None:
    lw.add_samples(
        [chat("rated"), chat("corrected"), chat("downvoted"), chat("plain")],
        request_ids=["r1", "r2", "r3", "r4"],
    )
    lw.add_feedback("r1", 1)
    lw.add_feedback("r2", 0, [{"role": "assistant", "content": "fixed"}])
    lw.add_feedback("r3", -1)
    with teacher_server(lambda s: answer("ok")) as teacher:
        lw.add_teacher(teacher.url)
        first = lw.create_job()
        run_labelling(lw.ctx, first["id"], host="w1")
        sent = {s.body["messages"][-1]["content"] for s in teacher.seen}
        assert sent == {"downvoted", "plain"}
        teacher.seen.clear()
        second = lw.create_job(skip_answered=False, max_prompts=3)
        run_labelling(lw.ctx, second["id"], host="w1")
        assert len(teacher.seen) == 3  # newest first, up to max_prompts
    assert lw.job(second["id"])["status"] == "succeeded"


def test_a_missing_key_fails_with_where_it_was_looked_for(lw: LabelWorld) -> None:
    lw.add_samples([chat("a")])
    with teacher_server(lambda s: answer("ok")) as teacher:
        lw.add_teacher(teacher.url)
        (lw.secrets / "TUTOR_KEY").unlink()
        job = lw.create_job()
        run_labelling(lw.ctx, job["id"], host="w1")
        assert teacher.seen == []
    error = lw.job(job["id"])["error"]
    assert "TUTOR_KEY" in error and str(lw.secrets) in error and "environment" in error


def test_no_traffic_in_the_window_fails_clearly(lw: LabelWorld) -> None:
    with teacher_server(lambda s: answer("ok")) as teacher:
        lw.add_teacher(teacher.url)
        job = lw.create_job(window="1h")
        run_labelling(lw.ctx, job["id"], host="w1")
    done = lw.job(job["id"])
    assert done["status"] == "failed" and "no traffic prompts" in done["error"]


def test_the_reaper_fails_a_job_whose_worker_stopped_beating(lw: LabelWorld) -> None:
    with teacher_server(lambda s: answer("ok")) as teacher:
        lw.add_teacher(teacher.url)
        job = lw.create_job()
    for session in run_unit_of_work(lw.world.stack.app.state.sessionmaker):
        row = session.get_one(LabellingJob, uuid.UUID(job["id"]))
        row.status, row.worker = "running", "gone"  # type: ignore[assignment]
        row.heartbeat_at = utcnow() - dt.timedelta(minutes=11)
    result: dict[str, Any] = reap(lw.ctx)
    assert result["labelling_failed"] == 1
    done = lw.job(job["id"])
    assert done["status"] == "failed" and "worker lost" in done["error"]
