"""Browser-facing hardening headers on every response, and CORS closed by default.

The API is JSON for programs, so its answers must never be sniffed into HTML,
framed, cached by a shared proxy (they carry job logs and department data), or
read by another origin's script unless that origin is listed in CORS_ORIGINS.
"""

from __future__ import annotations

from flask import Flask, Response, request

from app.config import Settings

# The docs pages (Swagger UI, ReDoc) run inline bootstrap scripts, so they only
# get frame-ancestors; everything else (JSON) may load nothing at all.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
HTML_CSP = "frame-ancestors 'none'"
CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-Match"
CORS_MAX_AGE = "600"


def init_security_headers(app: Flask, settings: Settings) -> None:
    allowed_origins = frozenset(settings.CORS_ORIGINS)

    @app.after_request
    def _harden(response: Response) -> Response:
        _common_headers(response)
        _cors_headers(response, allowed_origins)
        return response


def _common_headers(response: Response) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    is_html = response.mimetype == "text/html"
    headers.setdefault("Content-Security-Policy", HTML_CSP if is_html else JSON_CSP)
    if response.is_json:  # application/json and application/problem+json
        # Job status and department data must not linger in shared or browser caches.
        headers["Cache-Control"] = "no-store"
        headers.setdefault("Pragma", "no-cache")


def _cors_headers(response: Response, allowed_origins: frozenset[str]) -> None:
    origin = request.headers.get("Origin")
    # The answer depends on Origin whenever CORS is configured, so caches must key on it.
    if allowed_origins:
        response.vary.add("Origin")
    if not origin or origin not in allowed_origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = "Location, Retry-After, Link, ETag"
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
