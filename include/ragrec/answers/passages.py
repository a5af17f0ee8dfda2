"""The retrieved passages an answer is drawn from, numbered as they are cited."""

from __future__ import annotations

from dataclasses import dataclass, field

from ragrec.answers.sentences import Span, sentence_spans


@dataclass
class Passage:
    number: int
    doc_id: str
    title: str
    text: str
    chunk_id: str
    support: float  # cosine between the question and this passage
    sentences: list[Span] = field(default_factory=list, repr=False)

    def __post_init__(self):
        if not self.sentences:
            self.sentences = sentence_spans(self.text, self.title)

    def to_dict(self) -> dict:
        return {"number": self.number, "doc_id": self.doc_id, "title": self.title,
                "text": self.text, "chunk_id": self.chunk_id, "support": self.support}


@dataclass(frozen=True)
class Citation:
    """One source sentence: passage ``number``, and ``text[start:end]`` of chunk
    ``chunk_id`` of ``doc_id``."""

    number: int
    doc_id: str
    chunk_id: str
    start: int
    end: int

    @classmethod
    def of(cls, passage: Passage, span: Span) -> Citation:
        return cls(passage.number, passage.doc_id, passage.chunk_id, span.start, span.end)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class AnswerSentence:
    text: str
    citations: list[Citation]
    supported: bool = True
    score: float | None = None  # the selector's score (extractive answers)

    def to_dict(self) -> dict:
        return {"text": self.text, "citations": [c.to_dict() for c in self.citations],
                "supported": self.supported,
                **({"score": round(self.score, 4)} if self.score is not None else {})}
