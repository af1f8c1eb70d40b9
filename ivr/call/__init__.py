"""ivr.call: everything that happens after the customer picks up, read top to bottom.

``handler.py`` (the ``survey`` AGI handler: which script, voice and order; the call row) ->
``dtmf_dialog.py`` / ``voice_dialog.py`` (the survey's :class:`~ivr.survey.dialog.Dialog` over a
real channel) -> ``audiosocket.py`` (Asterisk's media socket: prompt out, caller audio in) and
``prompts.py`` (text + voice -> the file Asterisk plays).
"""
