"""A URLconf with a view that fails, for the error metrics tests."""

from django.urls import include, path


def explode(request):
    raise RuntimeError("boom")


urlpatterns = [path("explode/<int:n>", explode), path("", include("investiq.urls"))]
