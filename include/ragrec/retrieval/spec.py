"""A search spec: everything that decides a ranking besides the query and the index.

The same record is what the API serves, what ``ragrec search`` and ``ragrec eval`` run, and
what the golden-set gate scores; the spec a version was gated with is recorded in its
``_meta`` (``search_spec``) at go-live and is the API's default from then on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODES = ("bm25", "dense", "hybrid")
FUSIONS = ("rrf", "convex")
MAX_DEPTH = 1000
DEFAULT_RERANK_TOP = 50  # when a request turns rerank on and the spec has no head size


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class SearchSpec:
    """``mode``: which legs run. ``fusion``/``dense_weight``: how a hybrid combines them
    (RRF, or ``dense_weight`` x normalised dense + the rest x normalised BM25). ``depth``:
    chunks each leg retrieves. ``rerank_top``: how many fused chunks the cross-encoder
    re-scores (0: none); ``rerank_weight``: its share of the blend with the first stage.

    Fields that do not apply (fusion outside hybrid, the weight under RRF, the blend
    without rerank) are reset to their defaults, and a rerank blended at weight 0 (the first
    stage's order) is no rerank, so two specs that rank alike are equal and nothing calls the
    cross-encoder for scores that cannot change the order.
    """

    mode: str = "hybrid"
    fusion: str = "rrf"
    dense_weight: float = 0.3
    depth: int = 100
    rerank_top: int = 0
    rerank_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SpecError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise SpecError(f"fusion must be one of {FUSIONS}, not {self.fusion!r}")
        for name in ("dense_weight", "rerank_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value <= 1:
                raise SpecError(f"{name} must be a number in [0, 1], not {value!r}")
            object.__setattr__(self, name, float(value))
        for name, low in (("depth", 1), ("rerank_top", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not low <= value <= MAX_DEPTH:
                raise SpecError(f"{name} must be a whole number in [{low}, {MAX_DEPTH}], "
                                f"not {value!r}")
        if self.rerank_top > self.depth:
            raise SpecError(f"rerank_top ({self.rerank_top}) cannot exceed depth "
                            f"({self.depth})")
        defaults = SearchSpec.__dataclass_fields__
        if self.mode != "hybrid":
            object.__setattr__(self, "fusion", defaults["fusion"].default)
        if self.mode != "hybrid" or self.fusion == "rrf":
            object.__setattr__(self, "dense_weight", defaults["dense_weight"].default)
        if not self.rerank_weight:  # the first stage's order: nothing to score
            object.__setattr__(self, "rerank_top", 0)
        if not self.rerank_top:
            object.__setattr__(self, "rerank_weight", defaults["rerank_weight"].default)

    @property
    def needs_encoder(self) -> bool:
        return self.mode != "bm25"

    @property
    def reranks(self) -> bool:
        return self.rerank_top > 0

    @property
    def label(self) -> str:
        """A short name: ``hybrid``, ``hybrid-convex``, ``dense+rerank``..."""
        name = "hybrid-convex" if self.mode == "hybrid" and self.fusion == "convex" \
            else self.mode
        return f"{name}+rerank" if self.reranks else name

    def overridden(self, mode: str | None = None, fusion: str | None = None,
                   dense_weight: float | None = None, depth: int | None = None,
                   rerank: bool | None = None, rerank_top: int | None = None,
                   rerank_weight: float | None = None) -> SearchSpec:
        """This spec with a caller's choices (None keeps a field). ``rerank`` turns the
        rerank on (``rerank_top``, else this spec's, else ``DEFAULT_RERANK_TOP``) or off;
        the depth grows to the rerank head unless the caller set it."""
        on = self.reranks if rerank is None else rerank
        top = (rerank_top or self.rerank_top or DEFAULT_RERANK_TOP) if on else 0
        return SearchSpec(
            mode=mode or self.mode, fusion=fusion or self.fusion,
            dense_weight=self.dense_weight if dense_weight is None else dense_weight,
            depth=depth or max(self.depth, top), rerank_top=top,
            rerank_weight=self.rerank_weight if rerank_weight is None else rerank_weight)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def recorded(cls, meta: dict) -> SearchSpec:
        """The spec recorded on an index version at go-live (``_meta.search_spec``), or the
        default spec when none was."""
        return cls.from_dict(meta.get("search_spec"))

    @classmethod
    def from_dict(cls, data: dict | None) -> SearchSpec:
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise SpecError(f"a search spec is a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown search spec fields {unknown}; known: {sorted(known)}")
        return cls(**data)
