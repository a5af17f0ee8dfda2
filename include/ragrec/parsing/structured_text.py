"""Generic JSON as readable text: ``path.to.key: value`` lines, so any JSON file indexes."""

from __future__ import annotations

import json


def json_to_text(text: str) -> str:
    """Flatten a JSON document; raises ValueError (a corrupt file) when it is not JSON."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    lines: list[str] = []
    _walk(value, "", lines)
    return "\n\n".join(lines)


def _walk(value, path: str, lines: list[str]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _walk(child, f"{path}.{key}" if path else str(key), lines)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            rendered = ", ".join(str(v) for v in value if v is not None)
            if rendered:
                lines.append(f"{path}: {rendered}" if path else rendered)
        else:
            for index, child in enumerate(value):
                _walk(child, f"{path}[{index}]", lines)
    elif value is not None and str(value).strip():
        lines.append(f"{path}: {value}" if path else str(value))
