"""InvestIQ Ops Console settings, read from the environment (see .env.example).

Defaults are those of a laptop with nothing installed: SQLite and a file-system Celery
broker. Production sets DATABASE_URL and REDIS_URL (compose.yaml does). Why each group is
set as it is: docs/settings.md (the pointers below name its sections).
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from investiq import config

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Runtime files of the embedded default: SQLite database, broker folder, beat schedule.
VAR_DIR = Path(env.str("INVESTIQ_VAR_DIR", default=str(BASE_DIR / "var")))

# Off unless asked for: a trading console must never leak tracebacks by accident.
DEBUG = env.bool("DEBUG", default=False)

# No DATABASE_URL and no SECRET_KEY: a key is kept in var/ (docs/settings.md, "secret key").
EMBEDDED_DEFAULT = not env.str("DATABASE_URL", default="") and not env.str("SECRET_KEY", default="")

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or EMBEDDED_DEFAULT):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (see .env.example); only the "
            "embedded default (no DATABASE_URL) or DEBUG=true generates one under var/."
        )
    SECRET_KEY = config.local_secret_key(VAR_DIR / "secret_key")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "ops.logins.apps.LoginThrottlingConfig",  # django-axes
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Outermost, so they time the whole request; false only for bench (docs/settings.md, "Request metrics").
if env.bool("METRICS_MIDDLEWARE", default=True):
    MIDDLEWARE = [
        "ops.monitoring.middleware.RejectUnknownMethods",
        "ops.monitoring.middleware.MetricsMiddleware",
        *MIDDLEWARE,
        "ops.monitoring.middleware.PrometheusAfterMiddleware",
    ]

# django-axes innermost: its lockout 429 is seen by the request metrics.
MIDDLEWARE.append("axes.middleware.AxesMiddleware")

ROOT_URLCONF = "investiq.urls"
WSGI_APPLICATION = "investiq.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ops.trading.context_processors.trading_banner",
            ],
        },
    },
]

# Connection budget and pool: docs/settings.md, "Postgres: connection budget and pool".
DB_POOL_SIZE = env.int("DB_POOL_SIZE", default=4)
DB_POOL_RESERVE = env.int("DB_POOL_RESERVE", default=1)  # slots the engine's API traffic never takes
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=3.0)
DB_MAX_CONNECTIONS = env.int("DB_MAX_CONNECTIONS", default=97)
DB_SHELL_CONNECTIONS = env.int("DB_SHELL_CONNECTIONS", default=3)
APP_HOSTS = env.int("APP_HOSTS", default=1)
KILLSWITCH_DATABASE_URL = env.str("KILLSWITCH_DATABASE_URL", default="")
# Through django-prometheus, with each backend's options: docs/settings.md, "SQLite", "Postgres: ...".
_database_url = env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'investiq.sqlite3'}")
DATABASES = {"default": config.database(_database_url, env, VAR_DIR, DB_POOL_SIZE, DB_POOL_TIMEOUT)}

# Per process (django_cache_* families): nothing shared lives in it, halts and health are in Postgres.
CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The admin prints times as the console does: UTC, 24-hour, with seconds (investiq/formats).
FORMAT_MODULE_PATH = ["investiq.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Not the manifest variant: docs/settings.md, "Static files".
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The console sends people to the admin's login page: one login view, throttled below.
LOGIN_URL = "admin:login"

# --- Login throttling (django-axes) ----------------------------------------------------
# By username only, never by address: docs/settings.md, "Login throttling".
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
_lockout_minutes = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
if AXES_FAILURE_LIMIT < 1 or _lockout_minutes < 1:
    # 0 would lock every name at once, or never expire.
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be at least 1.")
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "ops.logins.lockouts.lockout_response"
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
AXES_DISABLE_ACCESS_LOG = True
SILENCED_SYSTEM_CHECKS = ["axes.W006"]  # lockout by username over every address, on purpose

# --- Security: strict unless DEBUG. TLS is terminated in front of gunicorn. ----------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
# Off by default: a 301 on a machine client's POST loses the order (docs/settings.md, "TLS").
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes and Prometheus talk plain HTTP inside the network; never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- API ----------------------------------------------------------------------------
# Largest JSON body the API accepts; larger ones get 413 before they are parsed.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)

# --- Metrics ----------------------------------------------------------------------------
# Set: GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" (ops.W003 if unset outside DEBUG).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Redis and Celery -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = config.filesystem_broker_options(VAR_DIR)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3, "socket_timeout": 5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=50)
# Acknowledge after the task ran, so a worker killed mid-task does not lose it.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Per worker; a command line's --concurrency wins. Counted in the connection budget (ops.W005).
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=2)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Dependency probes (ops/health) --------------------------------------------------------
PROBE_INTERVAL_SECONDS = env.int("PROBE_INTERVAL_SECONDS", default=15)
PROBE_CONNECT_TIMEOUT = env.float("PROBE_CONNECT_TIMEOUT", default=2.0)
PROBE_READ_TIMEOUT = env.float("PROBE_READ_TIMEOUT", default=5.0)
DEPENDENCY_HISTORY_DAYS = env.int("DEPENDENCY_HISTORY_DAYS", default=7)
POLYGON_BASE_URL = env.str("POLYGON_BASE_URL", default="https://api.polygon.io")
POLYGON_API_KEY = env.str("POLYGON_API_KEY", default="")
ML_SERVICE_URL = env.str("ML_SERVICE_URL", default="")
# Alpaca down N checks in a row -> global HALTED; Polygon -> global REDUCING. 0 disables.
AUTO_TRIPS_ENABLED = env.bool("AUTO_TRIPS_ENABLED", default=True)
AUTO_TRIP_AFTER_FAILURES = env.int("AUTO_TRIP_AFTER_FAILURES", default=3)

# --- Kill-switch drill (ops/drill, manage.py drill) -------------------------------------
# What each does, and where DRILL_ALERTS may be on: docs/settings.md, "Kill-switch drill".
DRILL_SCHEDULE = env.str("DRILL_SCHEDULE", default="").strip()  # a UTC crontab line; empty: none
DRILL_ALERTS = env.bool("DRILL_ALERTS", default=False)
DRILL_ALERT_TIMEOUT_SECONDS = env.float("DRILL_ALERT_TIMEOUT_SECONDS", default=60.0)
DRILL_STAGE_TIMEOUT_SECONDS = env.float("DRILL_STAGE_TIMEOUT_SECONDS", default=10.0)
# No passed drill for this long: KillSwitchDrillOverdue (only once a drill has ever run).
DRILL_MAX_AGE_DAYS = env.int("DRILL_MAX_AGE_DAYS", default=31)
# Exactly one `celery beat` per deployment (compose.yaml runs one); DRILL_SCHEDULE adds the drill.
CELERY_BEAT_SCHEDULE = config.beat_schedule(PROBE_INTERVAL_SECONDS, DRILL_SCHEDULE)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Kill switch ----------------------------------------------------------------------
# A second supervisor approves each resume; on in the demo too (docs/settings.md, "Kill switch").
TRADING_TWO_PERSON_RESUME = env.bool("TRADING_TWO_PERSON_RESUME", default=True)
TRADING_RESUME_REQUEST_TTL_MINUTES = env.int("TRADING_RESUME_REQUEST_TTL_MINUTES", default=15)

# --- The monitoring chain (manage.py check_monitoring) -----------------------------------
# Where check_monitoring finds each link (docs/settings.md, "The monitoring chain").
PROMETHEUS_URL = env.str("PROMETHEUS_URL", default="http://127.0.0.1:9090")
# The configuration it checks; another folder only to check a copy (the tests do).
MONITORING_DIR = Path(env.str("MONITORING_DIR", default=str(BASE_DIR / "monitoring")))
ALERTMANAGER_URL = env.str("ALERTMANAGER_URL", default="http://127.0.0.1:9093")
GRAFANA_URL = env.str("GRAFANA_URL", default="")
APP_URL = env.str("APP_URL", default="http://127.0.0.1:8000")
# The Watchdog's last delivery older than this: MONITORING SILENT (dead man's switch).
MONITORING_HEARTBEAT_MAX_AGE_SECONDS = env.int("MONITORING_HEARTBEAT_MAX_AGE_SECONDS", default=300)

# --- Alerts -----------------------------------------------------------------------------
# {"<alert>": "<scope>:<HALTED|REDUCING>"}, off unless set (ops.E004; docs/settings.md, "Alert-driven halts").
ALERT_ACTIONS = env.json("ALERT_ACTIONS", default={})

# --- Alpaca (broker) -------------------------------------------------------------------
ALPACA_BASE_URL = env.str("ALPACA_BASE_URL", default="https://paper-api.alpaca.markets")
ALPACA_KEY_ID = env.str("ALPACA_KEY_ID", default="")
ALPACA_SECRET_KEY = env.str("ALPACA_SECRET_KEY", default="")
ALPACA_CONNECT_TIMEOUT = env.float("ALPACA_CONNECT_TIMEOUT", default=3.0)
ALPACA_READ_TIMEOUT = env.float("ALPACA_READ_TIMEOUT", default=10.0)
# The cancel-all outbox: tries, backoff, stale sweep, wait (docs/settings.md, "Broker cancellations").
BROKER_CANCEL_MAX_ATTEMPTS = env.int("BROKER_CANCEL_MAX_ATTEMPTS", default=6)
BROKER_CANCEL_RETRY_BASE_SECONDS = env.float("BROKER_CANCEL_RETRY_BASE_SECONDS", default=2.0)
BROKER_CANCEL_STALE_SECONDS = env.int("BROKER_CANCEL_STALE_SECONDS", default=180)
BROKER_CANCEL_WAIT_SECONDS = env.float("BROKER_CANCEL_WAIT_SECONDS", default=5.0)
BROKER_CANCEL_TASK_TIME_LIMIT = int(ALPACA_CONNECT_TIMEOUT + ALPACA_READ_TIMEOUT) + 15
