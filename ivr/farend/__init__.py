"""ivr.farend: the far end of the calls, simulated on this machine for ``ivr demo`` and benchmarks.

``bed.py`` boots a private Asterisk + FastAGI daemon + sipp customers on free loopback ports;
``sipp.py`` writes the customers' scenario (answer, speak, press keys, hang up, busy, decline, per
caller ID); ``customer_plan.py`` plans a customer from the survey script itself so answers land
while each question is asked; ``dtmf_pcap.py`` writes RFC 4733 key presses; ``rtp_sniffer.py``
captures what the customer hears; ``campaign.py`` plans an all-day campaign on a bed and reads
sipp's INVITE trace. The real-call tests use the same bed; test-only helpers live in ``tests/``.
"""
