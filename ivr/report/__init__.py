"""ivr.report"""
