from django.urls import path

from realtime.consumers import ViolationConsumer

websocket_urlpatterns = [
    path("ws/violations/", ViolationConsumer.as_asgi()),
    # The tutorial's first URL, kept for clients written against it.
    path("ws/table/", ViolationConsumer.as_asgi()),
]
