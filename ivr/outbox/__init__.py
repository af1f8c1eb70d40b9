"""ivr.outbox"""
