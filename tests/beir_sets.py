"""Small BEIR-layout datasets the training tests build: six topics of two passages and two
questions each (the first question of a topic is a train query, the second a test query)."""

from __future__ import annotations

import json
from pathlib import Path

TOPICS = {
    "vpn": ["The VPN gateway needs a client certificate before it lets a laptop connect.",
            "Renew the VPN certificate every year from the self-service portal."],
    "payroll": ["Payroll runs on the 25th; overtime is paid the following month.",
                "Payslips are in the HR portal under compensation documents."],
    "printer": ["The third-floor printer jams when duplex printing on thick paper.",
                "Printer toner is ordered through the facilities desk."],
    "backup": ["Laptops back up to the cloud vault every night at two.",
               "Restore a deleted file from the backup vault within thirty days."],
    "parking": ["Visitor parking permits are issued at reception.",
                "Staff parking spaces are allocated by seniority each quarter."],
    "security": ["Report phishing e-mails with the button in the mail client.",
                 "Badges must be worn visibly in the server room."],
}
QUESTIONS = {
    "vpn": ["how do I connect the vpn from my laptop", "vpn certificate renewal"],
    "payroll": ["when is salary paid", "where are my payslips"],
    "printer": ["printer paper jam duplex", "order toner for the printer"],
    "backup": ["when do laptops back up", "recover a deleted file"],
    "parking": ["parking permit for a visitor", "how are staff parking spaces given"],
    "security": ["what to do with a phishing mail", "badge rules in the server room"],
}


def write_tiny_beir(root: Path, topics: tuple[str, ...] | None = None) -> Path:
    """The set (or only ``topics`` of it) under ``root``: corpus, queries, train and test
    qrels."""
    (root / "qrels").mkdir(parents=True)
    corpus, queries, train, test = [], [], [], []
    for topic in topics or tuple(TOPICS):
        for n, text in enumerate(TOPICS[topic]):
            corpus.append({"_id": f"{topic}-{n}", "title": topic.title(), "text": text})
        for n, question in enumerate(QUESTIONS[topic]):
            qid = f"q-{topic}-{n}"
            queries.append({"_id": qid, "text": question})
            (train if n == 0 else test).append((qid, f"{topic}-{n}"))
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    for name, rows in (("train", train), ("test", test)):
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in rows]
        (root / "qrels" / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return root
