"""ivr.callerid"""
