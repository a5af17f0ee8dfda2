"""Recommendations fitted to each deployment, on the real node: ``rec_train`` tunes the
blend of ``/recommend/user``'s sources on the deployment's own log (each user's latest event
held out), serves what it chose, and keeps a better live setup over a worse new fit."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from conftest import ROOT
from ragrec.recs import recommend, training
from ragrec.recs import setup as rec_setup
from ragrec.recs.events import log_events
from ragrec.recs.interactions import Event
from ragrec.recs.tuning import TuneSettings, validation_cases
from ragrec.sources import open_source

TOPICS = {
    "vpn": "VPN client, remote network access, tunnels, certificates and firewall rules",
    "travel": "business travel, flights, hotel bookings, per diem and expense receipts",
    "leave": "parental leave, maternity and paternity pay, childcare and return to work",
    "payroll": "salary payments, payslips, tax withholding and pension contributions",
    "security": "phishing emails, passwords, two-factor login and malware reports",
    "kitchen": "office kitchen, coffee machine, fridge cleaning and lunch deliveries",
    "parking": "car parking permits, bicycle racks, garage access and electric chargers",
    "laptops": "laptop orders, docking stations, monitors and hardware repairs",
}
PER_TOPIC = 10


def _catalogue(folder) -> dict[str, list[str]]:
    docs: dict[str, list[str]] = {}
    for topic, words in TOPICS.items():
        for n in range(PER_TOPIC):
            name = f"{topic}-{n}.md"
            (folder / name).write_text(
                f"# {topic.title()} note {n}\n\nThis page is about {words}. Question {n} on "
                f"{words.split(',')[n % 3].strip()} is answered here for staff.\n")
            docs.setdefault(topic, []).append(name)
    return docs


def _topical_log(docs: dict[str, list[str]], users: int, seed: int) -> list[dict]:
    """Each user reads four pages of one topic, in no fixed order: few people share any
    two pages, so only the content says what comes next."""
    rng, rows, start = random.Random(seed), [], datetime(2026, 11, 1, tzinfo=UTC)
    for user in range(users):
        pages = rng.sample(docs[rng.choice(sorted(docs))], 4)
        rows += [{"user_id": f"reader-{user}", "doc_id": page, "type": "click",
                  "ts": start + timedelta(hours=user, minutes=n)} for n, page in enumerate(pages)]
    return rows


def _paired_log(docs: dict[str, list[str]], users: int, seed: int) -> list[dict]:
    """Every page has a partner in another topic that its readers open next (a checklist
    that links unrelated forms): behaviour says what comes next, content misleads."""
    rng, start = random.Random(seed), datetime(2026, 11, 1, tzinfo=UTC)
    pages = [p for topic in sorted(docs) for p in docs[topic]]
    shuffled = pages[PER_TOPIC:] + pages[:PER_TOPIC]  # a page of another topic
    partner = dict(zip(pages, shuffled, strict=True))
    rows = []
    for user in range(users):
        first, second = rng.sample(pages, 2)
        for n, page in enumerate((first, partner[first], second, partner[second])):
            rows.append({"user_id": f"clerk-{user}", "doc_id": page, "type": "click",
                         "ts": start + timedelta(hours=user, minutes=n)})
    return rows


def test_time_split_holds_out_each_users_latest_steps_as_cases():
    events = [Event("a", d, t) for t, d in enumerate(["x", "y", "z", "w", "v"])]
    events += [Event("b", d, 10 + t) for t, d in enumerate(["x", "y"])]  # too short
    events += [Event("c", d, 20 + t) for t, d in enumerate(["x", "y", "x"])]  # a re-read
    fit, cases = validation_cases(events, holdout=1, min_history=2, positions=1)
    assert [(c.user, c.history, c.held) for c in cases] == [
        ("a", ("x", "y", "z", "w"), frozenset({"v"}))]
    assert sorted((e.user, e.item) for e in fit) == [
        ("a", "w"), ("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"), ("b", "y"),
        ("c", "x"), ("c", "y")]
    # Three steps: a's last three, each with all it read before; c's re-read is no case.
    fit, cases = validation_cases(events, holdout=1, min_history=2, positions=3)
    assert [(c.user, c.history[-1], c.held) for c in cases] == [
        ("a", "y", frozenset({"z"})), ("a", "z", frozenset({"w"})), ("a", "w", frozenset({"v"}))]
    assert sorted(e.item for e in fit if e.user == "a") == ["x", "y"]
    assert sorted(e.item for e in fit if e.user == "c") == ["x", "y"]


def test_each_deployment_gets_the_blend_its_own_log_needs(es, make_ingestor, index_name,
                                                         cleanup_alias, tmp_path):
    docs = _catalogue(tmp_path)
    topical, paired = f"{index_name}-topical", f"{index_name}-paired"
    for alias, log in ((topical, _topical_log(docs, 80, 1)), (paired, _paired_log(docs, 80, 2))):
        cleanup_alias(alias)
        make_ingestor().ingest(open_source(str(tmp_path)), alias)
        log_events(es, alias, log)

    reports = {alias: training.learn(es, alias) for alias in (topical, paired)}
    tuned = {alias: r["tuning"] for alias, r in reports.items()}
    for alias, report in tuned.items():
        assert report["install"], report
        # Both neighbour models were tried; learn fitted the one that scored best.
        assert set(report["methods"]) == {"ease", "cooccurrence"}
        assert report["methods"][report["method"]] == max(report["methods"].values())
        assert reports[alias]["method"] == report["method"]
        assert report["validation"]["users"] >= 60
        assert report["validation"]["ndcg@10"] >= report["baseline"]["ndcg@10"]
        live = rec_setup.read_setup(es, alias, fresh=True)
        assert live["weights"] == report["weights"]  # recorded on the feature table
        assert live["baseline"]["weights"] == rec_setup.RecSettings().weights()
    # Reading by topic: the content neighbours carry it; paired forms: only behaviour does.
    assert tuned[topical]["weights"]["content"] >= 0.4
    assert tuned[paired]["weights"]["content"] <= 0.1
    assert tuned[paired]["weights"]["collaborative"] == 1.0
    assert tuned[topical]["validation"]["ndcg@10"] > tuned[topical]["baseline"]["ndcg@10"]

    # Served: /recommend/user ranks with the deployment's own weights.
    for alias in (topical, paired):
        served = rec_setup.served_settings(es, alias)
        assert served.weights() == tuned[alias]["weights"]
    clerk = _paired_log(docs, 80, 2)[:3]  # clerk-0 read a page, its partner, another page
    log_events(es, paired, [{**row, "user_id": "newcomer"} for row in clerk])
    pages = [p for t in sorted(docs) for p in docs[t]]
    partner_of_last = (pages[PER_TOPIC:] + pages[:PER_TOPIC])[pages.index(clerk[2]["doc_id"])]
    items = recommend.for_user(es, paired, "newcomer", None, "v", k=3)["items"]
    assert items[0]["doc_id"] == partner_of_last


def other_method(method: str) -> str:
    return "cooccurrence" if method == "ease" else "ease"


def test_a_worse_fit_does_not_replace_the_live_setup(es, make_ingestor, index_name,
                                                    cleanup_alias, tmp_path):
    docs = _catalogue(tmp_path)
    cleanup_alias(index_name)
    make_ingestor().ingest(open_source(str(tmp_path)), index_name)
    log_events(es, index_name, _topical_log(docs, 80, 3))
    first = training.learn(es, index_name)["tuning"]
    assert first["install"] and first["weights"]["content"] >= 0.4
    before = rec_setup.read_setup(es, index_name, fresh=True)
    # An operator narrows the search to behaviour alone: on this log it fits worse.
    narrow = TuneSettings(collaborative=(1.0,), content=(0.0,), popular=(0.0,), ranker=False,
                          methods=(other_method(first["method"]),))
    learned = training.learn(es, index_name, tuning=narrow)
    second = learned["tuning"]
    assert not second["install"]
    assert learned["method"] == before["method"] == first["method"]  # the live one refitted
    assert second["live"]["weights"] == before["weights"]
    assert second["validation"]["ndcg@10"] < second["live"]["ndcg@10"]
    assert rec_setup.read_setup(es, index_name, fresh=True) == before


def test_recs_train_command_runs_the_sync_then_rec_train(es, make_ingestor, index_name,
                                                         cleanup_alias, tmp_path, es_url):
    docs = _catalogue(tmp_path)
    cleanup_alias(index_name)
    make_ingestor().ingest(open_source(str(tmp_path)), index_name)
    env = {**os.environ, "ES_URL": es_url}
    command = [sys.executable, "-m", "ragrec.cli", "recs", "train", "--index", index_name]
    empty = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    assert empty.returncode == 3 and "nothing to learn" in empty.stderr
    assert "Traceback" not in empty.stderr
    log_events(es, index_name, _topical_log(docs, 40, 4))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                          check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["sync"]["items"] == len(TOPICS) * PER_TOPIC
    assert report["users"] == 40 and report["method"] == "ease"
    assert report["tuning"]["install"] is True
    assert rec_setup.read_setup(es, index_name, fresh=True)["weights"] == \
        report["tuning"]["weights"]
