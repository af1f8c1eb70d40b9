"""ivr.speech"""
