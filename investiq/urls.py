from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("ops.urls")),
]

handler404 = "ops.api.errors.not_found"
handler500 = "ops.api.errors.server_error"
