"""InvestIQ Ops Console settings, read from the environment (see .env.example).

Defaults are those of a laptop with nothing installed: SQLite and a file-system Celery
broker. Production sets DATABASE_URL and REDIS_URL (compose.yaml does). Why each group is
set as it is: docs/settings.md (the pointers below name its sections).
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Runtime files of the embedded default: SQLite database, broker folder, beat schedule.
VAR_DIR = Path(env.str("INVESTIQ_VAR_DIR", default=str(BASE_DIR / "var")))

# Off unless asked for: a trading console must never leak tracebacks by accident.
DEBUG = env.bool("DEBUG", default=False)

# No DATABASE_URL and no SECRET_KEY: a key is kept in var/ (docs/settings.md, "secret key").
EMBEDDED_DEFAULT = not env.str("DATABASE_URL", default="") and not env.str("SECRET_KEY", default="")


def _local_secret_key(path: Path) -> str:
    """The key of this checkout's embedded default, created on first use (owner-only)."""
    import secrets

    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole, then linked: the first of several starting processes wins (docs/settings.md).
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(50))
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or EMBEDDED_DEFAULT):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (see .env.example); only the "
            "embedded default (no DATABASE_URL) or DEBUG=true generates one under var/."
        )
    SECRET_KEY = _local_secret_key(VAR_DIR / "secret_key")

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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'investiq.sqlite3'}"),
}
# django-prometheus's wrappers of the same backends add the django_db_* families (on
# Postgres through ops.db.postgresql, which keeps the pool's per-request cost down).
DATABASES["default"]["ENGINE"] = (
    DATABASES["default"]["ENGINE"]
    .replace("django.db.backends.postgresql", "ops.db.postgresql")
    .replace("django.db.backends.", "django_prometheus.db.backends.")
)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Connection budget and pool: docs/settings.md, "Postgres: connection budget and pool".
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DB_POOL_SIZE = env.int("DB_POOL_SIZE", default=4)
DB_POOL_RESERVE = env.int("DB_POOL_RESERVE", default=1)  # slots the engine's API traffic never takes
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=3.0)
DB_MAX_CONNECTIONS = env.int("DB_MAX_CONNECTIONS", default=97)
DB_SHELL_CONNECTIONS = env.int("DB_SHELL_CONNECTIONS", default=3)
APP_HOSTS = env.int("APP_HOSTS", default=1)
KILLSWITCH_DATABASE_URL = env.str("KILLSWITCH_DATABASE_URL", default="")
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # One file shared by every process; each option's reason: docs/settings.md, "SQLite".
    _sqlite = DATABASES["default"].setdefault("OPTIONS", {})
    _sqlite.setdefault("transaction_mode", "IMMEDIATE")
    _sqlite.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
    _sqlite.setdefault("timeout", 20)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", str(VAR_DIR / "test-investiq.sqlite3"))
else:
    _postgres = DATABASES["default"].setdefault("OPTIONS", {})
    # TCP guards for a vanished server: docs/settings.md, "Postgres: TCP guards".
    _postgres.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
    _tcp_user_timeout = env.int("DB_TCP_USER_TIMEOUT_MS", default=10_000)
    _postgres.setdefault("tcp_user_timeout", _tcp_user_timeout)
    _keepalives = env.bool("DB_KEEPALIVES", default=True)
    _keepalive_timings = {  # each variable named whole: .env.example's test reads them here
        "idle": env.int("DB_KEEPALIVES_IDLE", default=5),
        "interval": env.int("DB_KEEPALIVES_INTERVAL", default=5),
        "count": env.int("DB_KEEPALIVES_COUNT", default=3),
    }
    _postgres.setdefault("keepalives", int(_keepalives))
    for _name, _value in _keepalive_timings.items():
        # 0: the kernel's value, which libpq would pass to setsockopt() and fail.
        if _value:
            _postgres.setdefault(f"keepalives_{_name}", _value)
    # The same guards on the server's end, so a cut-off host's locks are released:
    # docs/settings.md, "Postgres: the same guards on the server's end".
    _server_settings = {
        # A stuck query must not hold a gunicorn worker (or the trade gate) forever.
        "statement_timeout": env.int("DB_STATEMENT_TIMEOUT_MS", default=5000),
        "tcp_user_timeout": _tcp_user_timeout,
    }
    if _keepalives:
        _server_settings |= {f"tcp_keepalives_{name}": value for name, value in _keepalive_timings.items()}
    # Ours first, so the URL's own ?options= win.
    _postgres["options"] = " ".join(
        [*(f"-c {name}={value}" for name, value in _server_settings.items()), _postgres.get("options", "")]
    ).strip()
    if DB_POOL_SIZE:
        # At most DB_POOL_SIZE connections per process: docs/settings.md, "pool".
        _hold = env.bool("DB_POOL_HOLD", default=False)
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them
        _postgres["pool"] = {
            "min_size": DB_POOL_SIZE if _hold else 1,
            "max_size": DB_POOL_SIZE,
            "max_lifetime": 24 * 3600.0 if _hold else 3600.0,
            "timeout": DB_POOL_TIMEOUT,
            "reconnect_timeout": DB_POOL_TIMEOUT,
            "name": "investiq",
        }

# Per-process cache, wrapped by django-prometheus for the django_cache_* families.
# Nothing shared lives in it: halts and health are in Postgres by design.
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
    "staticfiles": {
        # Not the manifest variant: that one turns a page into a 500 whenever
        # collectstatic has not run (tests, a fresh checkout), for a cache gain an
        # internal console does not need.
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
    },
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
SILENCED_SYSTEM_CHECKS = [
    # Lockout by username over every address, on purpose (docs/settings.md).
    "axes.W006",
]

# --- Security: strict unless DEBUG. TLS is terminated in front of gunicorn. ----------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
# Off by default: machine clients and probes call this service over the internal
# network, and a 301 on a POST loses the order. Turn it on where users reach it over TLS.
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
# When set, GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" (ops.W003 if unset
# outside DEBUG). Prometheus reads it from a credentials_file.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Redis and Celery -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The laptop default: a broker that needs no server (memory:// cannot cross the
    # worker/beat process boundary). Both directions use one folder.
    _broker_dir = VAR_DIR / "celery-broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        # kombu's default is ./control, i.e. wherever the process was started.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
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
# Processes (prefork) or threads per worker; a command line's --concurrency wins. Counted
# in the connection budget (ops.W005).
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

# Exactly one `celery beat` per deployment (compose.yaml runs one). A second one is
# harmless for the probes (ops.health.service.periodic_cycle), but would double the rest.
CELERY_BEAT_SCHEDULE = {
    "probe-dependencies": {
        "task": "ops.health.tasks.probe_dependencies",
        "schedule": float(PROBE_INTERVAL_SECONDS),
        # A cycle still queued after one interval is stale: the next one is due.
        "options": {"expires": float(PROBE_INTERVAL_SECONDS)},
    },
    "prune-dependency-history": {
        "task": "ops.health.tasks.prune_dependency_history",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
    # Re-queues broker cancellations whose task was lost (ops.trading.broker).
    "sweep-broker-cancellations": {
        "task": "ops.trading.tasks.sweep_broker_cancellations",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}

# --- Kill-switch drill (ops/drill, manage.py drill) -------------------------------------
# A crontab line ("m h dom mon dow", UTC) for beat to run the drill; empty (the default):
# no scheduled drill. The console button and manage.py drill work either way.
DRILL_SCHEDULE = env.str("DRILL_SCHEDULE", default="").strip()
# Wait for the drill's alert through Prometheus -> Alertmanager -> the console's webhook
# (and its resolution). Off: those stages are skipped, saying why. On only where a
# Prometheus with monitoring/alert_rules.yml scrapes APP_URL and its Alertmanager delivers
# to this app (compose's monitoring profile).
DRILL_ALERTS = env.bool("DRILL_ALERTS", default=False)
DRILL_ALERT_TIMEOUT_SECONDS = env.float("DRILL_ALERT_TIMEOUT_SECONDS", default=60.0)
DRILL_STAGE_TIMEOUT_SECONDS = env.float("DRILL_STAGE_TIMEOUT_SECONDS", default=10.0)
# No passed drill for this long: KillSwitchDrillOverdue (only once a drill has ever run).
DRILL_MAX_AGE_DAYS = env.int("DRILL_MAX_AGE_DAYS", default=31)
if DRILL_SCHEDULE:
    from celery.schedules import crontab

    try:
        if len(DRILL_SCHEDULE.split()) != 5:
            raise ValueError("five fields expected")
        _drill_crontab = crontab(*DRILL_SCHEDULE.split())
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"DRILL_SCHEDULE={DRILL_SCHEDULE!r} is not a crontab line 'minute hour day month weekday' "
            f"(e.g. '0 6 * * 1' for Mondays 06:00 UTC): {exc}"
        ) from None
    CELERY_BEAT_SCHEDULE["kill-switch-drill"] = {
        "task": "ops.drill.tasks.scheduled_drill",
        "schedule": _drill_crontab,
        # A drill queued but not started within an hour is skipped: the next one is due.
        "options": {"expires": 3600.0},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Kill switch ----------------------------------------------------------------------
# Resuming needs a second supervisor to approve. On by default everywhere, the laptop
# demo included (it seeds two supervisors), so the demo behaves like production.
TRADING_TWO_PERSON_RESUME = env.bool("TRADING_TWO_PERSON_RESUME", default=True)
TRADING_RESUME_REQUEST_TTL_MINUTES = env.int("TRADING_RESUME_REQUEST_TTL_MINUTES", default=15)

# --- The monitoring chain (manage.py check_monitoring) -----------------------------------
# Where check_monitoring finds each link; GRAFANA_URL also builds the console's embedded
# panels (unset: the console shows how to enable them, check_monitoring skips Grafana).
PROMETHEUS_URL = env.str("PROMETHEUS_URL", default="http://127.0.0.1:9090")
# The configuration it checks; another folder only to check a copy (the tests do).
MONITORING_DIR = Path(env.str("MONITORING_DIR", default=str(BASE_DIR / "monitoring")))
ALERTMANAGER_URL = env.str("ALERTMANAGER_URL", default="http://127.0.0.1:9093")
GRAFANA_URL = env.str("GRAFANA_URL", default="")
APP_URL = env.str("APP_URL", default="http://127.0.0.1:8000")
# The dead man's switch: Alertmanager delivers the always-firing Watchdog alert every
# 30 s; older than this, the console says MONITORING SILENT and check_monitoring FAILs.
MONITORING_HEARTBEAT_MAX_AGE_SECONDS = env.int("MONITORING_HEARTBEAT_MAX_AGE_SECONDS", default=300)

# --- Alerts -----------------------------------------------------------------------------
# Alert-driven kill-switch actions, off unless set: a JSON object of alert name ->
# "<scope>:<HALTED|REDUCING>", e.g. {"BrokerUnreachable": "global:HALTED"}. A firing alert
# so mapped trips the kill switch once per occurrence (source alert:<name>); nothing
# ever resumes automatically. Checked at start-up (ops.E004).
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
