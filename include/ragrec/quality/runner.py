"""Runs a suite over a frame with Great Expectations and says, in plain data, what failed.

One ephemeral GX context per runner (GX's analytics and progress bars off: no network, no
noise). With ``docs_dir`` every validation is also rendered into a Data Docs site there,
and the report carries the path of its ``index.html`` for alerts to link to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ragrec.config import GREAT_EXPECTATIONS_OFFLINE, set_library_defaults

set_library_defaults(GREAT_EXPECTATIONS_OFFLINE)


@dataclass
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int | None
    observed: str | None
    examples: list = field(default_factory=list)
    doc_ids: list[str] = field(default_factory=list)


@dataclass
class QualityReport:
    suite: str
    success: bool
    evaluated: int
    failures: list[Failure]
    rows: int
    docs_path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations met ({self.rows} rows)"
        lines = [f"{self.suite}: {len(self.failures)} of {self.evaluated} expectations failed "
                 f"({self.rows} rows)"]
        for f in self.failures:
            what = f"{f.expectation}" + (f" on {f.column}" if f.column else "")
            detail = (f"{f.unexpected_count} unexpected" if f.unexpected_count is not None
                      else f"observed {f.observed}")
            lines.append(f"  - {what}: {detail}"
                         + (f", e.g. {f.examples[:3]}" if f.examples else ""))
        if self.docs_path:
            lines.append(f"Data Docs: {self.docs_path}")
        return "\n".join(lines)


class QualityRunner:
    def __init__(self, docs_dir: Path | None = None):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.docs_dir = docs_dir
        if docs_dir is not None:
            docs_dir.mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(site_name="ragrec", site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            })
        source = self.context.data_sources.add_pandas("ragrec")
        self._asset = source.add_dataframe_asset("frames")
        self._batch = self._asset.add_batch_definition_whole_dataframe("whole")
        self._runs = 0

    def validate(self, frame, suite, key_column: str | None = "doc_id") -> QualityReport:
        gx = self._gx
        self._runs += 1
        suite = self.context.suites.add_or_update(suite)
        definition = self.context.validation_definitions.add(gx.ValidationDefinition(
            name=f"{suite.name}-{self._runs}", data=self._batch, suite=suite))
        result_format = {"result_format": "COMPLETE"}
        if key_column and key_column in frame.columns:
            result_format["unexpected_index_column_names"] = [key_column]
        if self.docs_dir is not None:
            checkpoint = self.context.checkpoints.add(gx.Checkpoint(
                name=f"{suite.name}-{self._runs}", validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["ragrec"])],
                result_format=result_format))
            outcome = checkpoint.run(batch_parameters={"dataframe": frame})
            result = next(iter(outcome.run_results.values()))
        else:
            result = definition.run(batch_parameters={"dataframe": frame},
                                    result_format=result_format)
        failures = [_failure(r, key_column) for r in result.results if not r.success]
        return QualityReport(
            suite=suite.name, success=bool(result.success), evaluated=len(result.results),
            failures=failures, rows=len(frame),
            docs_path=str(self.docs_dir / "index.html") if self.docs_dir else None,
        )


def _failure(result, key_column: str | None) -> Failure:
    config = result.expectation_config
    details = result.result or {}
    doc_ids = []
    for entry in details.get("unexpected_index_list") or []:
        if isinstance(entry, dict) and key_column and entry.get(key_column) is not None:
            doc_ids.append(str(entry[key_column]))
    examples = [_plain(v) for v in (details.get("partial_unexpected_list") or [])[:5]]
    observed = details.get("observed_value")
    exception = (result.exception_info or {}).get("exception_message")
    return Failure(
        expectation=config.type, column=config.kwargs.get("column"),
        unexpected_count=details.get("unexpected_count"),
        observed=str(observed) if observed is not None else exception,
        examples=examples, doc_ids=sorted(set(doc_ids)),
    )


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
