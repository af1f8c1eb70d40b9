"""Webhooks out: durable, signed, idempotent HTTP hand-offs to the platform.

``store.enqueue`` records a delivery (unique by its dedup key, so a producer that runs again
queues nothing twice); ``deliver.WebhookDeliverer`` POSTs due deliveries with an
``Idempotency-Key`` and an HMAC signature, retries with exponential backoff and never drops one.
Any feature that hands something to the platform (call results, accepted remedies, accepted
recall offers) goes through here.
"""
