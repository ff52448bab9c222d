"""Schemathesis hooks for dijkwacht: how to send an NDJSON body (POST /v1/reports/bulk)."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson_serializer(ctx, value):
    if value is None:
        return {"data": b""}
    if isinstance(value, (bytes, bytearray)):
        return {"data": bytes(value)}
    if isinstance(value, str):
        return {"data": value.encode("utf-8")}
    return {"data": (json.dumps(value) + "\n").encode("utf-8")}
