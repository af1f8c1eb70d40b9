"""ivr.asterisk"""
