"""From the database to the bus: the log, the listener, the bus."""
