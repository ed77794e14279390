"""A URLconf with a view that fails, for the error metrics tests."""

from django.db import connection, transaction
from django.urls import include, path


def explode(request, n: int | None = None):
    raise RuntimeError("boom")


def slow_query(request):
    """A reachable database that does not answer in time (Postgres: a statement timeout;
    SQLite: a busy timeout while another connection holds the write lock)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with transaction.atomic():
                cursor.execute("SET LOCAL statement_timeout = '50ms'")
                cursor.execute("SELECT pg_sleep(2)")
        else:
            cursor.execute("PRAGMA busy_timeout = 50")
            with transaction.atomic():  # BEGIN IMMEDIATE: waits for the write lock
                pass


urlpatterns = [
    path("explode/<int:n>", explode),
    path("api/v1/explode", explode),
    path("slow", slow_query),
    path("", include("investiq.urls")),
]

handler404 = "ops.api.errors.not_found"
handler500 = "ops.api.errors.server_error"
