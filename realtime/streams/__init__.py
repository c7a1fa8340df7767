"""From the bus to the clients: the bridge, SSE, WebSocket, Pushpin."""
