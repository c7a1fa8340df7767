import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

# Imported after get_asgi_application(): they need the app registry.
from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter

from realtime.auth import SameSiteOriginValidator, WebSocketTokenMiddleware
from realtime.routing import websocket_urlpatterns
from realtime.runtime import RealtimeRuntime

application = RealtimeRuntime(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameSiteOriginValidator(
                AuthMiddlewareStack(WebSocketTokenMiddleware(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)
