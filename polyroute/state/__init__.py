"""Fast state shared between replicas (circuit breakers now; limits and reservations later).
Embedded mode keeps it in process; ``state.redis_url`` moves it to Redis."""
