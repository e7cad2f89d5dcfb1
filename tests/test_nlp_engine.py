"""Engine modes, fall-back on crashes, and run_book, with stand-in processors (see nlp_fakes.py)."""

from __future__ import annotations

import os

import nlp_fakes
import pytest

from bookreader_cli.config import NlpSettings
from bookreader_cli.errors import BadInput, JobFailed
from bookreader_cli.nlp.engine import models_report
from bookreader_cli.nlp.runner import NlpPool, analyze_text, run_book
from bookreader_cli.nlp.segment import chapter_from_text

TEXT = (
    "Кругом лежал глубокий снег, и сугробы доходили до окон.\n"
    "Над полем поднимался туман, серый и тяжёлый.\n"
    "Он долго думал о своей жизни и ничего не решил."
)


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    monkeypatch.setenv("BOOKREADER_EXTRA_PROCESSORS", nlp_fakes.REGISTRATION)


@pytest.fixture(scope="module")
def pool():
    with NlpPool(2) as p:
        yield p


def _texts(result):
    return [d.text for d in result.descriptions]


def test_single_mode_uses_one_processor_and_its_yes_is_the_verdict():
    r = analyze_text(TEXT, mode="single", processors=["snow_b"])
    assert r.processors_used == ["snow_b"]
    assert _texts(r) == [
        "Кругом лежал глубокий снег, и сугробы доходили до окон.",
        "Над полем поднимался туман, серый и тяжёлый.",
    ]
    assert r.descriptions[0].type == "atmosphere"
    with pytest.raises(BadInput):
        analyze_text(TEXT, mode="single", processors=["snow_a", "snow_b"])


def test_sequential_mode_votes_in_this_process():
    r = analyze_text(TEXT, mode="sequential", processors=["snow_a", "snow_b"])
    assert r.timings["pid"] == os.getpid()
    # both say yes only on the snow sentence; equal weights (1.0 each, unknown names) → 0.5 < 0.6 elsewhere
    assert _texts(r) == ["Кругом лежал глубокий снег, и сугробы доходили до окон."]
    assert r.consensus_rate == 1.0
    assert r.votes_summary == {
        "snow_a": {"ran": 3, "yes": 1, "mean_score": 0.3667},
        "snow_b": {"ran": 3, "yes": 2, "mean_score": 0.6333},
    }


def test_parallel_mode_runs_each_processor_in_its_own_worker_and_takes_the_union(pool):
    r = analyze_text(TEXT, mode="parallel", processors=["snow_a", "snow_b"], pool=pool)
    pids = {name: w["pid"] for name, w in r.timings["workers"].items()}
    assert set(pids) == {"snow_a", "snow_b"}
    assert os.getpid() not in pids.values()
    assert len(_texts(r)) == 2  # union: the fog sentence passes on snow_b's word alone


def test_parallel_mode_with_its_own_short_lived_pool():
    r = analyze_text(TEXT, mode="parallel", processors=["snow_a", "snow_b"])
    assert len({w["pid"] for w in r.timings["workers"].values()} - {os.getpid()}) >= 1


def test_ensemble_mode_votes_like_sequential_but_in_workers(pool):
    ens = analyze_text(TEXT, mode="ensemble", processors=["snow_a", "snow_b"], pool=pool)
    seq = analyze_text(TEXT, mode="sequential", processors=["snow_a", "snow_b"])
    assert [d.to_dict() for d in ens.descriptions] == [d.to_dict() for d in seq.descriptions]
    assert os.getpid() not in {w["pid"] for w in ens.timings["workers"].values()}


def test_adaptive_mode_runs_the_others_only_on_candidates():
    r = analyze_text(
        TEXT, mode="adaptive", processors=["snow_b", "snow_a"], nlp=NlpSettings(weights={"snow_a": 1.0, "snow_b": 1.0})
    )
    # screener = first requested (no spacy here): snow_b scores 0.9 on two sentences, 0.1 < floor on the third
    assert r.timings["adaptive_candidates"] == 2
    assert r.votes_summary["snow_b"]["ran"] == 3 and r.votes_summary["snow_a"]["ran"] == 2
    assert _texts(r) == ["Кругом лежал глубокий снег, и сугробы доходили до окон."]


def test_unavailable_processor_is_reported_not_fatal():
    r = analyze_text(TEXT, mode="sequential", processors=["snow_a", "missing"])
    assert r.processors_unavailable == {"missing": "model directory not found"}
    assert r.processors_used == ["snow_a"]
    with pytest.raises(JobFailed):
        analyze_text(TEXT, mode="sequential", processors=["missing"])
    with pytest.raises(BadInput):
        analyze_text(TEXT, mode="sequential", processors=["nonesuch"])
    with pytest.raises(BadInput):
        analyze_text(TEXT, mode="sideways")


def test_crashing_processor_falls_back_to_the_others(pool):
    text = TEXT + "\nCRASH снег"
    for mode in ("sequential", "ensemble"):
        r = analyze_text(text, mode=mode, processors=["snow_a", "crashing"], pool=pool)
        assert "model blew up" in r.processor_failures["crashing"]
        assert r.processors_used == ["snow_a"]
        assert "Кругом лежал глубокий снег, и сугробы доходили до окон." in _texts(r)


def test_run_book_yields_every_chapter_and_drops_a_processor_that_crashed():
    chapters = [chapter_from_text(t) for t in (TEXT, "Снег шёл весь день, и CRASH случился снег.", TEXT, TEXT)]
    seen = []
    results = dict(
        run_book(
            chapters,
            lang="ru",
            mode="ensemble",
            processors=["snow_a", "crashing"],
            workers=2,
            on_chapter=lambda i, r: seen.append(i),
        )
    )
    assert sorted(results) == [0, 1, 2, 3] and sorted(seen) == [0, 1, 2, 3]
    assert results[0].processors_used == ["snow_a", "crashing"] and not results[0].processor_failures
    assert results[1].processors_used == ["snow_a"]
    for i in (1, 2, 3):
        assert "crashing" in results[i].processor_failures
    assert results[2].descriptions, "the chapters after the crash still get descriptions"


def test_run_book_does_not_start_a_failed_processor_on_later_chapters():
    chapters = [chapter_from_text(t) for t in (TEXT, "CRASH снег снег снег.", TEXT, TEXT, TEXT)]
    results = dict(run_book(chapters, mode="sequential", processors=["snow_a", "crashing"], workers=1))
    assert results[4].processors_used == ["snow_a"] and "crashing" in results[4].processor_failures


@pytest.mark.parametrize("mode", ["single", "sequential", "adaptive"])
def test_run_book_in_process_modes(mode):
    procs = ["snow_b"] if mode == "single" else ["snow_a", "snow_b"]
    results = dict(run_book([chapter_from_text(TEXT)] * 2, mode=mode, processors=procs, workers=2))
    assert sorted(results) == [0, 1]
    assert results[0].timings["worker_pid"] != os.getpid()
    assert [d.to_dict() for d in results[0].descriptions] == [d.to_dict() for d in results[1].descriptions]


def test_a_dying_worker_is_survived():
    results = dict(
        run_book(
            [chapter_from_text(t) for t in (TEXT, "Снег. DIE снег снег.", TEXT)],
            mode="ensemble",
            processors=["snow_a", "dying"],
            workers=2,
        )
    )
    assert sorted(results) == [0, 1, 2]
    assert "dying" in results[1].processor_failures
    assert results[2].descriptions


def test_models_report_lists_every_processor_cheaply():
    rows = {r["name"]: r for r in models_report()}
    assert {"spacy", "natasha", "stanza"} <= set(rows)
    assert rows["missing"]["available"] is False and rows["missing"]["reason"] == "model directory not found"
    assert rows["snow_a"]["available"] is True and rows["snow_a"]["source"] == "test stand-in"
