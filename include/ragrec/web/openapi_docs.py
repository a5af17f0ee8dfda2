"""What FastAPI cannot infer for the services' OpenAPI documents: request bodies of routes
that read the raw request (the model server validates by hand, for its own messages and
status codes), and which routes need which token (checked before routing, by
``request_guard``, so no route dependency declares it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

_REF = "#/components/schemas/{model}"


def json_body(model: type[BaseModel], description: str | None = None) -> dict:
    """``openapi_extra`` declaring ``model`` as a route's required JSON body."""
    body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": _REF.format(model=model.__name__)}}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def complete_openapi(app: FastAPI, schemes: dict[str, str] | None = None,
                     scheme_for: Callable[[str], str | None] | None = None,
                     bodies: Iterable[type[BaseModel]] = ()) -> None:
    """Add to ``app``'s document the ``bodies`` named by :func:`json_body`, and bearer-token
    ``schemes`` (name -> description) with each path's scheme from ``scheme_for``."""
    bodies = list(bodies)
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {})
        if bodies:
            _, definitions = models_json_schema([(m, "validation") for m in bodies],
                                                ref_template=_REF)
            components.setdefault("schemas", {}).update(definitions.get("$defs", {}))
        if schemes and scheme_for is not None:
            components["securitySchemes"] = {
                name: {"type": "http", "scheme": "bearer", "description": text}
                for name, text in schemes.items()}
            for path, operations in document.get("paths", {}).items():
                scheme = scheme_for(path)
                for operation in operations.values():
                    if scheme is not None:
                        operation["security"] = [{scheme: []}]
        return document

    app.openapi = openapi
