"""A URLconf with a view that fails, for the error metrics tests."""

from django.urls import include, path


def explode(request):
    raise RuntimeError("boom")


urlpatterns = [
    path("explode/<int:n>", explode),
    path("api/v1/explode", explode),
    path("", include("investiq.urls")),
]

handler404 = "ops.api.errors.not_found"
handler500 = "ops.api.errors.server_error"
