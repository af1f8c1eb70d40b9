"""``ivr serve``: the always-on service.

One asyncio process: the HTTP API (``/v1``, FastAPI) and the web console, a supervisor that runs
the dialer of every running campaign (the same :class:`~ivr.campaign.runner.CampaignRunner`,
with its crash safety), recurring campaigns on a schedule, event rules that turn platform events
into calls or messages, webhooks out, ``/health`` and ``/metrics``.
"""
