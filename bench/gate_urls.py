"""investiq.urls plus the baseline of bench/gate_cost.py: a bare view doing one insert.

Routed only under bench.gate_settings (see there). The view does the least a trade
recorder can: parse the JSON body and run one Trade.objects.create in autocommit, with
no token check, no validation and no gate, behind the same middleware as the API.
"""

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from investiq.urls import handler404, handler500  # noqa: F401
from investiq.urls import urlpatterns as production_urlpatterns
from ops.records.models import Trade

BARE_INSERT_PATH = "bench/bare-insert"


@csrf_exempt
def bare_insert(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    trade = Trade.objects.create(
        client_order_id=body["client_order_id"],
        symbol=body["symbol"],
        side=body["side"],
        quantity=body["quantity"],
        price=body["price"],
        strategy=body["strategy"],
    )
    return JsonResponse({"id": trade.pk}, status=201)


urlpatterns = [path(BARE_INSERT_PATH, bare_insert, name="bench-bare-insert"), *production_urlpatterns]
