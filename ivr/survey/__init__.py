"""ivr.survey"""
