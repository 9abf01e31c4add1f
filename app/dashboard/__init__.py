"""The web dashboard: server-rendered pages whose scripts call the JSON API.

The pages carry no data: the browser holds the bearer token (sessionStorage,
pasted once per session) and fetches everything with it, so an HTML page
reveals nothing to someone without a token, and the token never enters a URL.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, render_template

from app.domain.department import is_department_id
from app.domain.saga import SAGA
from app.domain.states import DepartmentStatus

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


# Scripts and styles only from this origin, none inline; no framing, no forms
# posting anywhere, no referrer leaking department ids.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("", strict_slashes=False)
def fleet() -> str:
    return render_template(
        "dashboard/fleet.html", statuses=[status.value for status in DepartmentStatus]
    )


@bp.get("/<department_id:department_id>")
def department(department_id: str) -> str:
    if not is_department_id(department_id):
        abort(404)
    return render_template("dashboard/department.html", department_id=department_id, saga=SAGA)


def init_dashboard(app: Flask) -> None:
    from app.api.limits import limiter

    app.register_blueprint(bp)
    # Pages and assets are public and data-free; the API calls they make are limited.
    limiter.exempt(bp)
