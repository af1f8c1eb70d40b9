"""ivr.survey - operator-edited survey scripts and the engine that runs them on a call.

``load_script(path, vocabulary=...)`` validates a script (every problem with file, line, node);
``SurveyRun(script, context, dialog, recorder, ...).run()`` runs it over a ``Dialog`` (AGI DTMF,
simulated, or the voice dialog), writing results through ``ivr.store.CallRecorder`` as it goes.
See surveys/README.md for the script format.
"""
