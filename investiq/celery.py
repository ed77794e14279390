import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "investiq.settings")

app = Celery("investiq")
# Every Celery option is a CELERY_* Django setting, so there is one place to look.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
