from django.urls import path, re_path

from realtime.streams.websocket import RefusedConsumer, ViolationConsumer

websocket_urlpatterns = [
    path("ws/violations/", ViolationConsumer.as_asgi()),
    # The tutorial's first URL, kept for clients written against it.
    path("ws/table/", ViolationConsumer.as_asgi()),
    # Anything else: refused cleanly (channels' router would raise, and log a traceback).
    re_path(r"", RefusedConsumer.as_asgi()),
]
