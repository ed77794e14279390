"""JSON answers from pydantic models: one declaration gives both the body a view sends
and its schema in the OpenAPI document (model_json_schema(mode="serialization")).

The models only shape and describe: built from rows and state the server already
trusts (model_validate with from_attributes, no checks beyond the types), and written
by pydantic's Rust serialiser straight to bytes. The text formats the API has always
used are declared here, on the type: decimals as strings quantized to their column's
places, date-times as Python's isoformat() ("+00:00", not pydantic's "Z").

ErrorBody is the document's `Error` (the class name leaves `Error` to Django's checks).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from django.http import HttpResponse
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, defer_build=False)

    @classmethod
    def of(cls, source: Any) -> Self:
        """The body, read from a row's or an object's attributes of the same names."""
        return cls.model_validate(source, from_attributes=True)

    def response(self, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
        response = HttpResponse(
            self.__pydantic_serializer__.to_json(self), status=status, content_type="application/json"
        )
        for name, value in (headers or {}).items():
            response[name] = value
        return response


DateTimeText = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


def DecimalText(places: int, description: str = "A decimal as text.") -> Any:
    """A decimal as a string with exactly `places` decimals, as its column stores it: a
    fresh row and its retry then read alike without reading the row back, and a JSON
    float would round it."""
    step = Decimal(1).scaleb(-places)

    def text(value: Decimal) -> str:
        return f"{value.quantize(step):f}"

    return Annotated[
        Decimal,
        PlainSerializer(text, return_type=str),
        WithJsonSchema(
            {"type": "string", "pattern": rf"^-?[0-9]+\.[0-9]{{{places}}}$", "description": description},
            mode="serialization",
        ),
    ]


class ErrorBody(ResponseModel):
    """Every error the API gives: {"error": code, "detail": text, "fields": {...}}."""

    error: str = Field(description="A stable, machine-readable code.")
    detail: str = Field(description="For people; may change.")
    # Left out of the body unless given: only a 400 for invalid input names fields.
    fields: dict[str, list[str]] = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Validation errors by field name (only on 400).",
        json_schema_extra=lambda schema: schema.pop("default"),
    )
