import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django's, with each request's middleware and view in one thread (realtime.http_handler).
from realtime.http_handler import get_asgi_application

django_asgi_app = get_asgi_application()

# Imported after get_asgi_application(): they need the app registry.
from autobahn import util as autobahn_util
from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter

from realtime.access.auth import SameOriginValidator, WebSocketTokenMiddleware
from realtime.access.redaction import redact_daphne_access_log
from realtime.routing import websocket_urlpatterns
from realtime.runtime import RuntimeMiddleware

# Daphne's access log prints query strings: no token may reach it.
redact_daphne_access_log()
# Apprise (the alerts) brings click, and with click importable autobahn, Daphne's WebSocket
# library, colours a debug string for every frame it sends whatever the log level: 5.5 %
# of Daphne's CPU (docs/performance.md). Plain strings, as without click.
autobahn_util._HAS_CLICK = False

application = RuntimeMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(
                AuthMiddlewareStack(WebSocketTokenMiddleware(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)
