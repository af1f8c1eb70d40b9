"""ivr.campaign"""
