"""Settings, read from the environment (every one in docs/reference/settings.md)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config import local_env
from config.env import (
    env_base_url,
    env_duration,
    env_flag,
    env_float,
    env_gc_thresholds,
    env_int,
    env_list,
    env_path,
    env_url_path,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# The checkout's .env, which `make run` writes, fills in what the environment leaves unset.
local_env.load()

DEBUG = env_flag("DJANGO_DEBUG", default=False)
LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", LOCAL_HOSTS)
# An explicit "yes, I know" for running outside the safe defaults below.
_INSECURE_OK = env_flag("DJANGO_ALLOW_INSECURE", default=False)

_DEV_SECRET_KEY = "insecure-dev-only-key-set-DJANGO_SECRET_KEY-in-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
# Former keys, still accepted while a new one is rolled out (sessions, the bus's signatures).
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])
if not SECRET_KEY and (DEBUG or _INSECURE_OK):
    SECRET_KEY = _DEV_SECRET_KEY
elif not DEBUG and not _INSECURE_OK:
    if len(SECRET_KEY) < 32 or SECRET_KEY.startswith(("django-insecure", "insecure-dev-only")):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is missing, short or a placeholder. Set it to a long random "
            "string (python -c 'import secrets; print(secrets.token_urlsafe(50))'), or set "
            "DJANGO_DEBUG=1 for local development."
        )
if DEBUG and not _INSECURE_OK and set(ALLOWED_HOSTS) - set(LOCAL_HOSTS):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG=1 with DJANGO_ALLOWED_HOSTS beyond this machine would show debug pages "
        "(settings, code) to the network. Turn DJANGO_DEBUG off, or set "
        "DJANGO_ALLOW_INSECURE=1 if you really mean it."
    )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the user's choice (the selector's cookie), else the browser's.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "realtime.access.auth.BearerTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A view the database pool had no connection for: a 503 with Retry-After, not a 500.
    "realtime.pool.PoolTimeoutMiddleware",
    # Last, as django-axes wants: turns a lockout into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    # Nothing configured: run an embedded PostgreSQL under .data/ (see config/embedded_postgres.py).
    from config.embedded_postgres import embedded_database_url

    return embedded_database_url(BASE_DIR / ".data" / "postgres")


DATABASES = {"default": dj_database_url.parse(_database_url(), conn_max_age=0)}
# A connection pool per process (psycopg_pool, Django 5.1+): WebSocket handshakes and SSE
# streams look up their user and replay briefly; opening a PostgreSQL connection (a new
# backend process) for each made handshakes queue past Daphne's 5 s connect timeout.
# A request that gets no connection within the timeout is answered 503 (realtime.pool).
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": 1,
    "max_size": env_int("REALTIME_DB_POOL_SIZE", 10, minimum=1),
    "timeout": env_float("REALTIME_DB_POOL_TIMEOUT", 10.0, minimum=0.1),
}

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Redis pub/sub: the listener PUBLISHes each batch once and Redis pushes it to
            # every server's bridge. The list-based RedisChannelLayer costs the receiver
            # four round trips per message (BZPOPMIN and its backup bookkeeping), which
            # capped a bridge's rate (docs/performance.md).
            # Pub/sub keeps nothing for a subscriber that is away: the bridge reads what
            # it missed from the event log after the listener's next heartbeat.
            # channels_redis.pubsub.RedisPubSubChannelLayer, with names of this deployment
            # (realtime/pipeline/bus.py): Redis pub/sub ignores the database number.
            "BACKEND": "realtime.pipeline.bus.DeploymentChannelLayer",
            "CONFIG": {
                # redis-py 8 times sockets out after 5 s by default. Bounded, so a command
                # on a connection that died with a Redis restart fails instead of hanging.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 15,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 10,
                    }
                ],
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 100_000},
        }
    }

# The prefix of this deployment's channels on Redis; by default one derived from the
# database's identity (realtime.pipeline.bus.bus_prefix), so deployments sharing a Redis are apart.
REALTIME_BUS_PREFIX = os.environ.get("REALTIME_BUS_PREFIX", "")
# Seconds a message on the Redis bus is accepted after it was signed (by the receiver's
# clock, either way): longer than the clocks of the deployment's machines are apart, short
# enough that a sniffed message cannot be replayed later (realtime/pipeline/signing.py).
REALTIME_BUS_MAX_AGE = env_float("REALTIME_BUS_MAX_AGE", 30.0, minimum=1.0)

# Without Redis the channel layer lives in one process, so the listener must too.
REALTIME_EMBEDDED_LISTENER = env_flag("REALTIME_EMBEDDED_LISTENER", default=not REDIS_URL)
# The alerts' worker (manage.py notify) runs inside the server too when the listener does
# (make run's one process); in production it runs beside listen_notify (deploy/).
REALTIME_EMBEDDED_NOTIFY = env_flag("REALTIME_EMBEDDED_NOTIFY", default=REALTIME_EMBEDDED_LISTENER)
# The plant's MQTT broker (docs/how-to/mqtt.md): mqtt://user:password@broker:1883/plant1, the
# path the topics' prefix (mqtts:// for TLS). Unset: nothing is published.
REALTIME_MQTT_URL = os.environ.get("REALTIME_MQTT_URL", "")
# Its publisher (manage.py publish_mqtt) runs inside the server too, like the alerts' worker.
REALTIME_EMBEDDED_MQTT = env_flag("REALTIME_EMBEDDED_MQTT", default=REALTIME_EMBEDDED_LISTENER)
# The console's address as people reach it, for the links in alerts (https://console.plant).
REALTIME_PUBLIC_URL = os.environ.get("REALTIME_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# A message whose contact keeps failing is retried with back-off for this long, then failed.
REALTIME_ALERT_RETRY_FOR = env_duration("REALTIME_ALERT_RETRY_FOR", "1h")
# A webhook whose receiver keeps failing this long is disabled (its deliveries kept).
REALTIME_WEBHOOK_DISABLE_AFTER = env_duration("REALTIME_WEBHOOK_DISABLE_AFTER", "24h")
# A sent webhook delivery is kept this long (its log in the admin), then pruned by the
# worker; one not sent yet is kept until it is.
REALTIME_WEBHOOK_DELIVERIES_KEPT = env_duration("REALTIME_WEBHOOK_DELIVERIES_KEPT", "7d")
# /healthz says "degraded" while a message due this long ago is still unsent.
REALTIME_ALERT_BACKLOG_LIMIT = env_duration("REALTIME_ALERT_BACKLOG_LIMIT", "2m")

# Pushpin's publish endpoint when it fronts the SSE streams, e.g.
# http://127.0.0.1:5561?iss=pushpin&key=SECRET (the key is Pushpin's sig_key); with a
# Pushpin on each of several machines, every one's, space-separated: the active listener
# publishes each change to each (docs/how-to/deploy.md). They share one key: django-grip
# checks a request's Grip-Sig with GRIP_URL's.
_grip_urls = os.environ.get("GRIP_URL", "").split()
GRIP_URL = _grip_urls[0] if _grip_urls else ""
REALTIME_MORE_GRIP_URLS = _grip_urls[1:]
if len({parse_qs(urlsplit(url).query).get("key", [""])[0] for url in _grip_urls}) > 1:
    raise ImproperlyConfigured("GRIP_URL: every Pushpin must have the same key (sig_key)")
if GRIP_URL:
    MIDDLEWARE.insert(1, "django_grip.GripMiddleware")

# Bytes a WebSocket or SSE client may leave unread before it is dropped (it resumes by id).
REALTIME_CLIENT_MAX_BUFFER = env_int("REALTIME_CLIENT_MAX_BUFFER", 4 * 2**20, minimum=1)
# ...after it has taken nothing for this many seconds (a slow reader is waited for).
REALTIME_CLIENT_STALL_TIMEOUT = env_float("REALTIME_CLIENT_STALL_TIMEOUT", 30.0, minimum=0.1)
# An SSE stream that is cut (a restart, a network) is reconnected by its EventSource after
# a random time from 1 s to this many seconds, which each stream sets (`retry:`): browsers
# would all wait the same 3 s, and a crowd came back as one burst (docs/how-to/deploy.md).
REALTIME_SSE_RECONNECT_WITHIN = env_float("REALTIME_SSE_RECONNECT_WITHIN", 5.0, minimum=1.0)
# The longest JSON text of one change (a WebSocket frame, an SSE `data:`), in UTF-8 bytes: a
# change whose text is longer travels in its reduced form
# (realtime.pipeline.changes.reduced). At most
# Daphne's --websocket_max_message_size (1 MiB by default), which drops a longer message.
REALTIME_FRAME_MAX_BYTES = env_int(
    "REALTIME_FRAME_MAX_BYTES", 256 * 2**10, minimum=16 * 2**10, maximum=2**20
)
# WebSocket and SSE streams one user (its tokens included) may hold open per server process.
REALTIME_MAX_STREAMS_PER_USER = env_int("REALTIME_MAX_STREAMS_PER_USER", 50, minimum=1)

# SSE streams send a `heartbeat` event (this server's view of the pipeline) when they
# have sent nothing for this many seconds; the live table says "Stale" after 2.5 of them.
REALTIME_HEARTBEAT_SECONDS = env_float("REALTIME_HEARTBEAT_SECONDS", 10.0, minimum=0.5)
# The pipeline is not live while the listener is further behind than this (/healthz's
# listener lag_seconds), or unheard of for longer than realtime.streams.health.LISTENER_STALE_AFTER.
REALTIME_PIPELINE_LAG_LIMIT = env_float("REALTIME_PIPELINE_LAG_LIMIT", 30.0, minimum=0.1)
# The page plays its sound again, every this many minutes, while a violation older than
# that is unacknowledged (and not shelved); 0: never (the default). Fractions allowed.
REALTIME_REMINDER_MINUTES = env_float("REALTIME_REMINDER_MINUTES", 0.0, minimum=0.0)
# The longest an operator may shelve a camera for, in minutes (realtime.console.shelves).
REALTIME_SHELF_MAX_MINUTES = env_int("REALTIME_SHELF_MAX_MINUTES", 720, minimum=1)
# How long an operator may take back their own acknowledgement ("Undo"), in seconds.
REALTIME_UNDO_SECONDS = env_int("REALTIME_UNDO_SECONDS", 300, minimum=0)

# The server process's garbage collector (gc.set_threshold), or "python" for Python's own
# 700,10,10. With those, thousands of connections meant frequent full collections that
# held the whole server (docs/performance.md has the numbers).
REALTIME_GC_THRESHOLDS = env_gc_thresholds("REALTIME_GC_THRESHOLDS", "50000,20,100")

# How long the event log keeps events (replay window); the active listener prunes hourly.
REALTIME_EVENT_RETENTION = env_duration("REALTIME_EVENT_RETENTION", "7d")

# The detectors' images (realtime/console/media.py; docs/how-to/images.md): the directory
# they are in, the part of violation_image that stands for it, and optionally another
# server's address for them (then the app serves none) or nginx's internal location
# (X-Accel-Redirect).
REALTIME_MEDIA_ROOT = env_path("REALTIME_MEDIA_ROOT", BASE_DIR / ".data" / "media")
REALTIME_MEDIA_PREFIX = env_url_path("REALTIME_MEDIA_PREFIX", "/media/")
REALTIME_MEDIA_BASE_URL = env_base_url("REALTIME_MEDIA_BASE_URL")
REALTIME_MEDIA_ACCEL_REDIRECT = env_url_path("REALTIME_MEDIA_ACCEL_REDIRECT", "")
# Thumbnails, made once per file version; any of them may be deleted at any time.
REALTIME_THUMBNAIL_DIR = env_path("REALTIME_THUMBNAIL_DIR", BASE_DIR / ".data" / "thumbnails")

# E-mail (alerts to `mailto:` contacts, realtime.alerts): Django's settings and defaults,
# from the environment; every other contact is an Apprise URL.
EMAIL_HOST = os.environ.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_flag("EMAIL_USE_TLS", default=False)  # STARTTLS, usually port 587
EMAIL_USE_SSL = env_flag("EMAIL_USE_SSL", default=False)  # TLS from the start, usually 465
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS and EMAIL_USE_SSL are both set: set one (TLS: STARTTLS, usually port "
        "587; SSL: TLS from the start, usually port 465)."
    )
# Seconds an SMTP connection may wait; Django's default waits forever, holding the sender.
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 30.0, minimum=1.0)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL") or "webmaster@localhost"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes): after REALTIME_LOGIN_FAILURE_LIMIT wrong passwords for
# one user from one address, that user is locked out from that address for
# REALTIME_LOGIN_LOCKOUT. By user and address together: a control room shares an address,
# and one operator's typos must not lock out the others. Unlock an operator with
# `python manage.py axes_reset_username USERNAME` (docs/how-to/sites-and-access.md).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("REALTIME_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_duration("REALTIME_LOGIN_LOCKOUT", "15m")
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "realtime/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
# The console's languages (locale/): each page, script and row in the one the user chose
# with the selector, else the first their browser's Accept-Language names, else English.
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Times in 24 hours in every language, as the console writes them (the admin's included).
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the finders when collectstatic has not been run (make run).
WHITENOISE_USE_FINDERS = True
# ...in which case STATIC_ROOT does not exist yet, which WhiteNoise would warn about at each start.
warnings.filterwarnings("ignore", message=f"No directory at: {STATIC_ROOT}")
# WhiteNoise's own table has no .wav (it answered application/octet-stream).
WHITENOISE_MIMETYPES = {".wav": "audio/wav", ".oga": "audio/ogg", ".webm": "audio/webm"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-eventstream: replay and ids come from our event log (realtime.streams.storage).
EVENTSTREAM_STORAGE_CLASS = "realtime.streams.storage.EventLogStorage"
EVENTSTREAM_CHANNELMANAGER_CLASS = "realtime.streams.storage.ViolationChannelManager"

# A strict Content-Security-Policy (django-csp): the page's own scripts and styles and the
# vendored htmx only; the tutorial's inline WebSocket client (/legacy/) runs by its nonce.
_IMG_SRC = [SELF, "data:"]
if REALTIME_MEDIA_BASE_URL:
    # Images come from the camera system's server (REALTIME_MEDIA_BASE_URL): its origin too.
    _IMG_SRC.append("{0.scheme}://{0.netloc}".format(urlsplit(REALTIME_MEDIA_BASE_URL)))
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": _IMG_SRC,
        # 'self' covers the page's own ws:// and wss:// (CSP level 3).
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Behind a TLS proxy, browsers may be told to use https only: DJANGO_HSTS_SECONDS (e.g.
# 31536000). Off by default: `make run` serves plain http.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_flag("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "realtime.log_format.KeyValueFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    # A client's fault (a 4xx, a bad Host header) in one line, without a traceback.
    "filters": {
        "client_fault": {"()": "realtime.log_format.ClientFault"},
        "placeholder_images": {"()": "realtime.log_format.PlaceholderImages"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_fault"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "realtime": {"level": os.environ.get("REALTIME_LOG_LEVEL", "INFO")},
        # A missing image: one line per file (realtime.console.media), not one per request.
        "django.request": {"filters": ["placeholder_images"]},
    },
}
