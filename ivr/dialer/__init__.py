"""ivr.dialer"""
