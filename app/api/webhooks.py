"""Webhook deliveries and their attempts, for admins."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.auth import admin_required
from app.api.http_headers import paginated
from app.api.webhooks_schemas import DeliveryListArgs, DeliveryListSchema
from app.domain.services import webhook_deliveries

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/api/webhooks",
    description="Signed job state-change notifications and every attempt to deliver them",
)


@blp.route("/deliveries")
class Deliveries(MethodView):
    decorators = [admin_required]

    @blp.arguments(DeliveryListArgs, location="query")
    @blp.response(200, DeliveryListSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Webhook deliveries, oldest first, with every attempt (paginated)"""
        rows, total = webhook_deliveries.list_deliveries(
            args.get("departmentId"),
            args.get("provisioningId"),
            args.get("status"),
            args["page"],
            args["perPage"],
        )
        return paginated("deliveries", rows, total, args)
