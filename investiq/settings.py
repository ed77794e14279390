"""InvestIQ Ops Console settings, read from the environment (see .env.example).

Defaults are those of a laptop with nothing installed: SQLite and a file-system Celery
broker. Production sets DATABASE_URL and REDIS_URL (compose.yaml does).
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

# The embedded default is a laptop with nothing configured: no DATABASE_URL and no
# SECRET_KEY. There a key is generated once and kept in var/, so `make run` and every
# documented `manage.py` command work without exporting anything. Any deployment sets
# SECRET_KEY (compose.yaml requires it), and then every production check applies.
EMBEDDED_DEFAULT = not env.str("DATABASE_URL", default="") and not env.str("SECRET_KEY", default="")


def _local_secret_key(path: Path) -> str:
    """The key of this checkout's embedded default, created on first use (owner-only)."""
    import secrets

    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole to a private temporary file, then linked into place: os.link fails
    # if the key exists, so when web, worker and beat start at once the first key wins,
    # and nobody ever reads a half-written one.
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
# Request metrics wrap everything else, so they time and count the whole request.
# METRICS_MIDDLEWARE=false exists for bench/metrics_overhead.py, which measures their cost.
# django-prometheus's PrometheusBeforeMiddleware is left out on purpose: it records only
# families that no dashboard reads (see DASHBOARD_FAMILIES in ops/monitoring/middleware.py).
if env.bool("METRICS_MIDDLEWARE", default=True):
    MIDDLEWARE = [
        "ops.monitoring.middleware.RejectUnknownMethods",
        "ops.monitoring.middleware.MetricsMiddleware",
        *MIDDLEWARE,
        "ops.monitoring.middleware.PrometheusAfterMiddleware",
    ]

# django-axes last, innermost: it turns a login refused for a lockout into the lockout
# page (429) after the login view has answered, and the request metrics see that 429.
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
# Seconds a thread keeps its connection: SQLite (a file handle, not a server slot), and
# Postgres without its pool (DB_POOL_SIZE=0). The pool below replaces it on Postgres.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
# Postgres: the most connections one process (a gunicorn worker, runserver, a Celery
# worker child, a shell command) ever holds, whatever its thread count. 0: no pool, one
# persistent connection per thread as before issue 16 (benchmarks only: runserver's thread
# per request then exhausts the server). See README "Database connections".
DB_POOL_SIZE = env.int("DB_POOL_SIZE", default=4)
# Of those, how many the trading engine's API traffic may never take (ops.api.admission):
# they stay free for people (console, admin), Alertmanager's webhook and the kill switch.
DB_POOL_RESERVE = env.int("DB_POOL_RESERVE", default=1)
# Seconds a request waits for a connection (or an engine slot) before its 503. It is also
# how long a request waits while the database refuses connections (the pool retries in
# the background and tells no waiter), so it stays short.
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=3.0)
# The connection budget that ops.W005 checks: what the server admits to the app (Postgres
# defaults: max_connections 100 less 3 superuser slots), and the connections
# kept free for shells (manage.py trading, migrate, a person's psql).
DB_MAX_CONNECTIONS = env.int("DB_MAX_CONNECTIONS", default=97)
DB_SHELL_CONNECTIONS = env.int("DB_SHELL_CONNECTIONS", default=3)
APP_HOSTS = env.int("APP_HOSTS", default=1)
# A connection URL for `manage.py trading` only: a role allowed into the server's reserved
# slots, so a halt from a shell gets in even when the server is full (README).
KILLSWITCH_DATABASE_URL = env.str("KILLSWITCH_DATABASE_URL", default="")
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # web (several gunicorn workers), worker, beat and manage.py share one file, and every
    # connection of every process is opened with these options (the test database too).
    _sqlite = DATABASES["default"].setdefault("OPTIONS", {})
    # IMMEDIATE: a transaction takes the write lock at BEGIN, where SQLite waits its busy
    # timeout. A deferred one that has read and then writes (the halt: read the state row,
    # then update it) cannot wait there without risking a deadlock, so SQLite fails it at
    # once with "database is locked" whatever the timeout. Writers now queue; that is the
    # serialisation the kill switch's select_for_update stands for on Postgres.
    _sqlite.setdefault("transaction_mode", "IMMEDIATE")
    # WAL: readers (the gate's state read, the console, /metrics) neither block nor wait
    # for the one writer. journal_mode is stored in the file; synchronous is per connection.
    # synchronous=FULL (SQLite's default, kept on purpose) syncs the WAL at every commit,
    # so a halt or a trade that has been answered survives a power cut too (a laptop's
    # likeliest crash). NORMAL is as safe against a crashed process but may lose the
    # last commits to a power cut; it would cut the halt's p99 under eight saturating
    # clients from ~1.2 s to ~0.1 s (docs/benchmarks.md, P4): durability wins here.
    _sqlite.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
    # Seconds a writer waits for the lock. Below gunicorn's 30 s worker timeout, so a
    # request stuck behind a long writer (seed_demo, a migration) gets a 503 instead of a
    # killed worker; far above the halt's worst wait under load (P4: 1.5 s), so a halt
    # does not give up on trading traffic.
    _sqlite.setdefault("timeout", 20)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Tests use a file, not Django's in-memory default: an in-memory database dies with
    # its last connection, so a test that disconnects the database (or a subprocess such
    # as gunicorn or a Celery worker that needs the same data) cannot work with it.
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", str(VAR_DIR / "test-investiq.sqlite3"))
else:
    _postgres = DATABASES["default"].setdefault("OPTIONS", {})
    # libpq: seconds per address tried (whole seconds, at least 2).
    _postgres.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
    # A server that vanishes from the network (a partition, a dead host, a failover whose
    # old address goes silent: packets dropped, no reset) answers nothing: statement_timeout
    # is the server's own timer and cannot end the wait, and libpq has no read timeout, so
    # a request would hold its worker until gunicorn kills it (the kernel itself gives up
    # only after ~15 minutes of retransmissions). These libpq parameters hand the wait to
    # the kernel, which aborts the connection; the query fails with OperationalError (no
    # SQLSTATE, "Connection timed out"), so the gate answers 503 trading_state_unavailable
    # and the console its outage page, and CONN_HEALTH_CHECKS replaces the dead connection
    # once the network is back. libpq ignores them on a Unix socket.
    #
    # tcp_user_timeout, in ms: data sent and not acknowledged for this long aborts the
    # connection (TCP_USER_TIMEOUT). It never cuts a slow query short: the server's kernel
    # acknowledges the query at once, and statement_timeout governs the rest. 10 s: the
    # worst case of a request against a vanished host is this plus one connect_timeout for
    # the reconnect (~13 s), well under gunicorn's 30 s worker timeout, so the client gets
    # the 503 rather than a killed worker; and it outlasts the ~6 s that five successive
    # retransmissions of one segment take (200 ms minimum RTO, doubling), so a lossy but
    # live network keeps its connections. 0 leaves it to the kernel (the ~15 minutes).
    _tcp_user_timeout = env.int("DB_TCP_USER_TIMEOUT_MS", default=10_000)
    _postgres.setdefault("tcp_user_timeout", _tcp_user_timeout)
    # Keepalives cover what tcp_user_timeout cannot see: nothing is unacknowledged while a
    # request waits for a result, or while a pooled connection
    # sits idle. After keepalives_idle seconds of silence the kernel sends a probe, then
    # one every keepalives_interval seconds; keepalives_count probes lost and the
    # connection is dead (5 + 3 x 5 = 20 s). On Linux a set tcp_user_timeout takes over
    # that decision: the connection dies once it has been silent for tcp_user_timeout
    # with a probe unanswered (~10 s with these defaults). So an idle pooled connection to
    # a vanished host is closed before a request reuses it, and that request pays only the
    # reconnect. A live server's kernel answers every probe, however busy the server: one
    # small packet each way per idle connection every 5 s is the whole cost. libpq's own
    # default is keepalives on with the kernel's timings: a first probe after 2 hours.
    _keepalives = env.bool("DB_KEEPALIVES", default=True)
    _keepalive_timings = {  # each variable named whole: .env.example's test reads them here
        "idle": env.int("DB_KEEPALIVES_IDLE", default=5),
        "interval": env.int("DB_KEEPALIVES_INTERVAL", default=5),
        "count": env.int("DB_KEEPALIVES_COUNT", default=3),
    }
    _postgres.setdefault("keepalives", int(_keepalives))
    for _name, _value in _keepalive_timings.items():
        # 0 means the kernel's value. libpq documents 0 so, but passes it on to
        # setsockopt(), which Linux refuses: every connection would fail with
        # "setsockopt(TCP_KEEPIDLE) failed: Invalid argument". Unset, libpq leaves it alone.
        if _value:
            _postgres.setdefault(f"keepalives_{_name}", _value)
    # The same guards on the server's end of each connection, set per session through
    # the startup packet's `options`. An app host cut off in the middle of a transaction
    # (a halt holding the trading state row FOR UPDATE, the link gone before COMMIT)
    # leaves its backend "idle in transaction", holding the lock, and nothing on the
    # server ever times that out by default: the backend waits for the client's next
    # message until its kernel's keepalive gives up (Linux: first probe after 2 hours,
    # then 9 probes 75 s apart). Meanwhile every other host's halt waits
    # statement_timeout on the lock and fails: the kill switch is stuck. With these the
    # server's kernel finds the client gone (Linux: once silent for tcp_user_timeout with
    # a probe unanswered, so ~10 s after the client's last packet with the defaults) and
    # aborts the socket; the backend's wait for the client fails, it exits, and its
    # transaction rolls back, releasing the locks. Checked (Postgres 15, pg_settings and
    # the documentation): all four are context "user", so any role may set them at
    # connection time; the same units as libpq's (seconds, tcp_user_timeout in ms); 0
    # means the operating system's default, and unlike libpq's 0 it connects (checked:
    # "-c tcp_keepalives_count=0" connects and reads 9, the kernel's value), so the
    # DB_* zeros pass through; on a Unix socket they are ignored and read as 0. Postgres
    # always turns SO_KEEPALIVE on for TCP clients, so DB_KEEPALIVES=false can only
    # leave the server's own timings (postgresql.conf, else the kernel's) alone.
    #
    # Not set: idle_in_transaction_session_timeout. It would add one case: a client whose
    # host is alive but whose process stalls mid-transaction (its kernel answers the
    # probes, so no TCP guard fires). The app's own processes are bounded there already: a
    # transaction here is a few statements with no I/O between them (the broker call is an
    # outbox task queued on commit), gunicorn kills a stuck worker and Celery's time_limit
    # a stuck task, and a dead process's socket closes, which ends its backend at once.
    # What remains is a person idling in `manage.py shell` inside transaction.atomic(), or
    # a slow data migration: whether to end those is the database owner's policy (ALTER
    # ROLE ... SET, or the URL's ?options=, which composes below). Checked: the whole suite
    # passes with it at 10 s on its own connection; its tests that hold locks on purpose
    # use plain psycopg connections, which never get these options.
    _server_settings = {
        # A stuck query must not hold a gunicorn worker (or the trade gate) forever.
        "statement_timeout": env.int("DB_STATEMENT_TIMEOUT_MS", default=5000),
        "tcp_user_timeout": _tcp_user_timeout,
    }
    if _keepalives:
        _server_settings |= {f"tcp_keepalives_{name}": value for name, value in _keepalive_timings.items()}
    # Ours first, then any `options` of the URL's own (?options=-c%20...): the server
    # applies the -c settings in order, so a setting named in both is the URL's.
    _postgres["options"] = " ".join(
        [*(f"-c {name}={value}" for name, value in _server_settings.items()), _postgres.get("options", "")]
    ).strip()
    if DB_POOL_SIZE:
        # psycopg_pool through Django (OPTIONS["pool"]): a connection goes back to the pool
        # at the end of each request or task, so a process holds at most max_size, however
        # many threads it runs; a request beyond them waits up to `timeout`, then gets a
        # 503, and never turns into the server's "too many clients". The pool opens one
        # connection at first use (a shell command needs no more) and grows on demand,
        # unless DB_POOL_HOLD (gunicorn.conf.py sets it for threaded workers): then it
        # opens them all at the worker's start and keeps them.
        _hold = env.bool("DB_POOL_HOLD", default=False)
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them
        _postgres["pool"] = {
            "min_size": DB_POOL_SIZE if _hold else 1,
            "max_size": DB_POOL_SIZE,
            # A held connection is replaced every day rather than every hour (the pool's
            # default): each replacement is a new connection that a full server refuses,
            # and the pool then holds one fewer.
            "max_lifetime": 24 * 3600.0 if _hold else 3600.0,
            "timeout": DB_POOL_TIMEOUT,
            # A failed connect is retried in the background with a doubling delay (1, 2, 4,
            # ... s) until this many seconds have passed, and no other is tried meanwhile:
            # after a long outage the pool would wait minutes to try again, answering 503
            # long after the database is back. Given up this soon, the next request starts
            # a fresh attempt: back within about this long after the database is.
            "reconnect_timeout": DB_POOL_TIMEOUT,
            "name": "investiq",
        }
    # A known limit, left as it is: a Postgres that is frozen but whose host still runs
    # (its processes SIGSTOPped, say). That host's kernel acknowledges every packet and
    # probe, so no TCP guard fires, and statement_timeout is the frozen server's own
    # timer: a query on an open connection waits until gunicorn kills the worker. (A
    # frozen postmaster alone stalls only new connections, which connect_timeout ends.)

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
# These logins can halt and resume trading and book fills past the gate. After
# LOGIN_FAILURE_LIMIT failed logins for one username, each within LOGIN_LOCKOUT_MINUTES of
# the one before, every login as that name is refused (even with the right password)
# until LOGIN_LOCKOUT_MINUTES after the last of them; a supervisor may release it sooner
# (`manage.py login_lockouts release`). By username only, never by address: a trading
# floor shares one NAT address, and locking it would lock out everyone who could halt.
# The AxesStandaloneBackend refuses a locked name before any password is checked, and
# counts against the name whatever the address or browser (ops/logins/).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
_lockout_minutes = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
if AXES_FAILURE_LIMIT < 1 or _lockout_minutes < 1:
    # 0 would lock every name at once (axes compares failures >= limit), or never expire.
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES must be at least 1.")
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes)
AXES_LOCKOUT_PARAMETERS = ["username"]
# Attempts refused during a lockout do not extend it: it ends LOGIN_LOCKOUT_MINUTES after
# the failure that caused it, so someone who keeps guessing cannot keep a person locked out
# (the refused attempts check no password, so they guess nothing either).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Our lockout page (times in UTC, what to do) and our admin (ops/logins/admin.py).
AXES_LOCKOUT_CALLABLE = "ops.logins.lockouts.lockout_response"
AXES_ENABLE_ADMIN = False
# No start-up banner on every manage.py command; the lockout lines that matter are ours.
AXES_VERBOSE = False
# No row per successful login: nothing reads it, and it would only grow.
AXES_DISABLE_ACCESS_LOG = True
SILENCED_SYSTEM_CHECKS = [
    # axes.W006 asks for ip_address among the lockout parameters, because a lockout keyed
    # on (username, user agent) could be dodged by changing browsers. Ours is the username
    # alone, counted over every address and browser (ops/tests/test_logins.py), and an
    # address lockout would lock out a whole trading floor behind one NAT.
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
# Cancel-all-orders on a halt runs as a task (an outbox): tries before giving up as
# FAILED, the first retry's wait (doubling each time), how long a row may sit pending
# untouched before the beat sweep re-queues it, and how long the admin and the command
# wait for the outcome before saying "pending, will be retried".
BROKER_CANCEL_MAX_ATTEMPTS = env.int("BROKER_CANCEL_MAX_ATTEMPTS", default=6)
BROKER_CANCEL_RETRY_BASE_SECONDS = env.float("BROKER_CANCEL_RETRY_BASE_SECONDS", default=2.0)
BROKER_CANCEL_STALE_SECONDS = env.int("BROKER_CANCEL_STALE_SECONDS", default=180)
BROKER_CANCEL_WAIT_SECONDS = env.float("BROKER_CANCEL_WAIT_SECONDS", default=5.0)
# One try is one Alpaca call: connect + read timeouts, with room to record the outcome.
BROKER_CANCEL_TASK_TIME_LIMIT = int(ALPACA_CONNECT_TIMEOUT + ALPACA_READ_TIMEOUT) + 15
