"""ivr.regions"""
