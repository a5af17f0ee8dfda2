"""The CLI's last line of defence: an error no check names is still one line and a non-zero
exit (bad input 2, anything else 1), and RAGREC_DEBUG=1 brings the traceback back."""

from __future__ import annotations

import pytest

from ragrec import cli


def _failing(exc: Exception):
    def handler(_args):
        raise exc
    return handler


@pytest.mark.parametrize(("exc", "status", "line"), [
    (RuntimeError("the index moved"), 1,
     "ragrec: error: unexpected RuntimeError: the index moved (RAGREC_DEBUG=1 shows where)"),
    (KeyError("_id"), 2, "ragrec: error: a record lacks the field '_id'"),
    (FileNotFoundError(2, "No such file or directory", "/data/pairs.jsonl"), 2,
     "ragrec: error: No such file or directory: /data/pairs.jsonl"),
])
def test_an_unnamed_error_is_one_line(monkeypatch, capsys, exc, status, line):
    monkeypatch.delenv("RAGREC_DEBUG", raising=False)
    monkeypatch.setattr(cli, "_events_command", _failing(exc))
    assert cli.main(["events", "export", "--out", "x.jsonl"]) == status
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("RAGREC_DEBUG", "1")
    monkeypatch.setattr(cli, "_events_command", _failing(RuntimeError("the index moved")))
    with pytest.raises(RuntimeError, match="the index moved"):
        cli.main(["events", "export", "--out", "x.jsonl"])
